// SigV4 against AWS's published vectors: the aws-sig-v4-test-suite cases
// get-vanilla and get-vanilla-query-order-key-case, and the S3 API
// reference's "Signature Calculations for the Authorization Header" examples
// (GET Object with a Range header, GET Bucket listing).

#include "storage/sigv4.h"

#include <gtest/gtest.h>

#include "storage/crypto.h"

namespace osprey::storage {
namespace {

const SigV4Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                         ""};
const SigV4Credentials kS3DocCredentials{"AKIAIOSFODNN7EXAMPLE",
                                         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(CryptoTest, Sha256OfNothing) { EXPECT_EQ(Sha256Hex(""), kEmptySha256); }

TEST(CryptoTest, IncrementalSha256MatchesOneShot) {
  Sha256Hasher h;
  h.Update("hello ");
  h.Update("world");
  EXPECT_EQ(h.FinishHex(), Sha256Hex("hello world"));
}

TEST(SigV4Test, GetVanilla) {
  SigV4Request r;
  r.host = "example.amazonaws.com";
  r.path = "/";
  r.payload_sha256 = kEmptySha256;
  SigV4Signature s = SignV4(r, kSuiteCredentials, "us-east-1", "service", "20150830T123600Z");
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(s.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  // What to send: the signed headers and the Authorization header.
  ASSERT_EQ(s.headers.size(), 3u);
  EXPECT_EQ(s.headers[0], (std::pair<std::string, std::string>("host", "example.amazonaws.com")));
  EXPECT_EQ(s.headers[1], (std::pair<std::string, std::string>("x-amz-date", "20150830T123600Z")));
  EXPECT_EQ(s.headers[2].first, "authorization");
}

TEST(SigV4Test, GetVanillaQueryOrderKeyCase) {
  SigV4Request r;
  r.host = "example.amazonaws.com";
  r.query = {{"Param2", "value2"}, {"Param1", "value1"}};
  r.payload_sha256 = kEmptySha256;
  SigV4Signature s = SignV4(r, kSuiteCredentials, "us-east-1", "service", "20150830T123600Z");
  EXPECT_EQ(s.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4Test, S3GetObjectWithRange) {
  SigV4Request r;
  r.host = "examplebucket.s3.amazonaws.com";
  r.path = "/test.txt";
  r.headers = {{"Range", "bytes=0-9"}, {"x-amz-content-sha256", kEmptySha256}};
  r.payload_sha256 = kEmptySha256;
  SigV4Signature s = SignV4(r, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(
      s.canonical_request,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Test, S3ListObjects) {
  SigV4Request r;
  r.host = "examplebucket.s3.amazonaws.com";
  r.path = "/";
  r.query = {{"prefix", "J"}, {"max-keys", "2"}};
  r.headers = {{"x-amz-content-sha256", kEmptySha256}};
  r.payload_sha256 = kEmptySha256;
  SigV4Signature s = SignV4(r, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, SessionTokenIsSigned) {
  SigV4Request r;
  r.host = "example.amazonaws.com";
  r.payload_sha256 = kEmptySha256;
  SigV4Credentials with_token = kSuiteCredentials;
  with_token.session_token = "token";
  SigV4Signature s = SignV4(r, with_token, "us-east-1", "service", "20150830T123600Z");
  EXPECT_NE(s.authorization.find("SignedHeaders=host;x-amz-date;x-amz-security-token"),
            std::string::npos);
}

TEST(SigV4Test, UriEncoding) {
  EXPECT_EQ(UriEncode("a-b_c.d~e", true), "a-b_c.d~e");
  EXPECT_EQ(UriEncode("dir/model file+1.bin", false), "dir/model%20file%2B1.bin");
  EXPECT_EQ(UriEncode("a/b=c", true), "a%2Fb%3Dc");
  EXPECT_EQ(UriEncode("\xc3\xa9", true), "%C3%A9");
  EXPECT_EQ(CanonicalQuery({{"prefix", "models/iris"}, {"list-type", "2"}}),
            "list-type=2&prefix=models%2Firis");
}

TEST(SigV4Test, AmzDateIsUtc) {
  EXPECT_EQ(AmzDate(std::chrono::system_clock::from_time_t(1440938160)), "20150830T123600Z");
}

}  // namespace
}  // namespace osprey::storage
