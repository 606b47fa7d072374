"""TorchServe model archives for the tests, written as torch-model-archiver
writes them (a zip: MAR-INF/MANIFEST.json, the serialized model, the model
file, the handler and extra files at the top), in KServe's torchserve layout
(model-store/*.mar, config/config.properties with a model_snapshot):

- mnist: an eager CNN (model.py + a state_dict) with KServe's sample kind of
  custom handler, an ImageClassifier subclass answering the digit;
- tiny: a TorchScript 3-channel classifier with the built-in image_classifier
  handler and index_to_name.json (top-5 labels with probabilities);
- sums: a handler module with a function entry point, handle(data, context),
  answering row sums of V1 instances or of each V2 input;
- seg: a TorchScript segmentation net (forward answers {"out": [N,K,H,W]})
  with the built-in image_segmenter (each pixel's class and probability);
- det: an eager detection net (model.py + state_dict; forward answers one
  {"boxes", "labels", "scores"} per image) with the built-in
  object_detector and index_to_name.json (boxes scoring 0.5 or more);
- text: an eager EmbeddingBag classifier with source_vocab.pt and the
  built-in text_classifier (text cleaned, tokenized, bigrams; labels with
  probabilities).

The reference answers are computed here the way the handlers compute them,
with the same torch, torchvision and PIL."""

import base64
import io
import json
import textwrap
import types
import zipfile
from typing import Dict

import numpy as np
import torch

MNIST_MODEL = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 13 * 13, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)
            return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)
''')

MNIST_HANDLER = textwrap.dedent('''
    from torchvision import transforms
    from ts.torch_handler.image_classifier import ImageClassifier


    class MNISTDigitClassifier(ImageClassifier):
        image_processing = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])

        def postprocess(self, data):
            return data.argmax(1).tolist()
''')

SUMS_HANDLER = textwrap.dedent('''
    import numpy as np

    state = {}


    def handle(data, context):
        if data is None:  # initialisation: TorchServe calls handle(None, context)
            state["model"] = context.manifest["model"]["modelName"]
            return None
        if data and isinstance(data[0], dict):  # V2: one row per input tensor
            return [np.asarray(row["data"], dtype=np.float64).sum(axis=-1) for row in data]
        return [float(np.sum(row)) for row in data]
''')

DET_MODEL = textwrap.dedent('''
    import torch
    from torch import nn


    class Detector(nn.Module):
        """Three fixed boxes per image, scored from the image's mean colour."""

        def __init__(self):
            super().__init__()
            self.score = nn.Linear(3, 3)

        def forward(self, images):
            out = []
            for image in images:
                scores = torch.sigmoid(self.score(image.mean(dim=(1, 2))))
                boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0],
                                      [1.0, 2.0, 3.0, 4.0]])
                out.append({"boxes": boxes, "labels": torch.tensor([1, 2, 3]),
                            "scores": scores})
            return out
''')

TEXT_MODEL = textwrap.dedent('''
    from torch import nn


    class TextNet(nn.Module):
        def __init__(self, vocab_size=64, classes=4):
            super().__init__()
            self.embedding = nn.EmbeddingBag(vocab_size, 8, mode="mean")
            self.fc = nn.Linear(8, classes)

        def forward(self, text, offsets):
            return self.fc(self.embedding(text, offsets))
''')

DET_LABELS = {"1": "cat", "2": "dog", "3": "bird"}
TEXT_LABELS = {"0": "World", "1": "Sports", "2": "Business", "3": "Sci/Tec"}
TEXTS = ["The team won the match!", "Markets <b>fell</b> as stocks dropped; shares didn't rise."]

LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 5, stride=4)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x):
        x = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1)
        return self.fc(torch.flatten(x, 1))


def mnist_net():
    module = types.ModuleType("mnist_model")
    exec(MNIST_MODEL, module.__dict__)  # noqa: S102 (the archive's own model.py)
    torch.manual_seed(0)
    return module.Net().eval()


def tiny_net():
    torch.manual_seed(1)
    return Tiny().eval()


class Seg(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 8, stride=8)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


def seg_net():
    torch.manual_seed(2)
    return Seg().eval()


def eager(source, cls, seed):
    module = types.ModuleType("archive_model")
    exec(source, module.__dict__)  # noqa: S102 (the archive's own model.py)
    torch.manual_seed(seed)
    return getattr(module, cls)().eval()


def det_net():
    return eager(DET_MODEL, "Detector", 3)


def text_net():
    return eager(TEXT_MODEL, "TextNet", 4)


def text_vocab():
    """A vocabulary holding every token and bigram of TEXTS as the handler cuts them."""
    from ts.torch_handler.text_classifier import TextClassifier
    from ts.handler_utils.text_utils import ngrams_iterator

    vocab = {}
    for text in TEXTS:
        for gram in ngrams_iterator(text_tokens(TextClassifier(), text), 2):
            vocab.setdefault(gram, len(vocab))
    assert len(vocab) < 64, len(vocab)
    return vocab


def text_tokens(handler, text):
    text = handler._remove_html_tags(text).lower()
    text = handler._expand_contractions(text)
    text = handler._remove_accented_characters(text)
    return handler._tokenize(handler._remove_punctuation(text))


def write_mar(path, name, handler, files, serialized=None, model_file=None, version="1.0"):
    model = {"modelName": name, "handler": handler, "modelVersion": version}
    if serialized:
        model["serializedFile"] = serialized
    if model_file:
        model["modelFile"] = model_file
    manifest = {"createdOn": "04/12/2026 03:00:00", "runtime": "python", "model": model,
                "archiverVersion": "0.12.0"}
    with zipfile.ZipFile(path, "w") as mar:
        mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest, indent=2))
        for member, data in files.items():
            mar.writestr(member, data)


def snapshot_properties(models):
    """config.properties as KServe's samples write it: {name: mar file}."""
    snapshot = {"name": "startup.cfg", "modelCount": len(models), "models": {
        name: {"1.0": {"defaultVersion": True, "marName": mar, "minWorkers": 1, "maxWorkers": 1,
                       "batchSize": 1, "maxBatchDelay": 10, "responseTimeout": 120}}
        for name, mar in models.items()}}
    return ("inference_address=http://0.0.0.0:8085\nmanagement_address=http://0.0.0.0:8085\n"
            "metrics_address=http://0.0.0.0:8082\ngrpc_inference_port=7070\n"
            "enable_metrics_api=true\nmetrics_format=prometheus\nnumber_of_netty_threads=4\n"
            "job_queue_size=10\nenable_envvars_config=true\ninstall_py_dep_per_model=true\n"
            "model_store=/mnt/models/model-store\n"
            f"model_snapshot={json.dumps(snapshot, separators=(',', ':'))}\n")


def state_dict_bytes(net):
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


def scripted_bytes(net):
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buf)
    return buf.getvalue()


def make_store(root, models=("mnist", "tiny", "sums"), properties=None):
    """KServe's torchserve layout under `root` with the named archives."""
    (root / "model-store").mkdir(parents=True)
    (root / "config").mkdir()
    store = root / "model-store"
    if "mnist" in models:
        write_mar(store / "mnist.mar", "mnist", "mnist_handler.py",
                  {"mnist_cnn.pt": state_dict_bytes(mnist_net()), "model.py": MNIST_MODEL,
                   "mnist_handler.py": MNIST_HANDLER},
                  serialized="mnist_cnn.pt", model_file="model.py")
    if "tiny" in models:
        index = {str(i): [f"n0{i}", label] for i, label in enumerate(LABELS)}
        write_mar(store / "tiny.mar", "tiny", "image_classifier",
                  {"tiny.pt": scripted_bytes(tiny_net()), "index_to_name.json": json.dumps(index)},
                  serialized="tiny.pt")
    if "sums" in models:
        write_mar(store / "sums.mar", "sums", "sums.py:handle", {"sums.py": SUMS_HANDLER})
    if "seg" in models:
        write_mar(store / "seg.mar", "seg", "image_segmenter", {"seg.pt": scripted_bytes(seg_net())},
                  serialized="seg.pt")
    if "det" in models:
        write_mar(store / "det.mar", "det", "object_detector",
                  {"det.pt": state_dict_bytes(det_net()), "model.py": DET_MODEL,
                   "index_to_name.json": json.dumps(DET_LABELS)},
                  serialized="det.pt", model_file="model.py")
    if "text" in models:
        buf = io.BytesIO()
        torch.save(text_vocab(), buf)
        write_mar(store / "text.mar", "text", "text_classifier",
                  {"text.pt": state_dict_bytes(text_net()), "model.py": TEXT_MODEL,
                   "source_vocab.pt": buf.getvalue(),
                   "index_to_name.json": json.dumps(TEXT_LABELS)},
                  serialized="text.pt", model_file="model.py")
    text = properties if properties is not None else snapshot_properties(
        {m: f"{m}.mar" for m in models})
    (root / "config" / "config.properties").write_text(text)
    return root


def digit_png(seed):
    """A 28x28 grayscale PNG of noise, as bytes (seeds 0, 1, 2: three different digits)."""
    from PIL import Image

    pixels = (np.random.default_rng(seed).random((28, 28)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def color_png(seed, size=(300, 260)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def b64(data):
    return base64.b64encode(data).decode()


def mnist_reference(pngs):
    """The digit the mnist archive's handler answers for each PNG."""
    from PIL import Image
    from torchvision import transforms

    prep = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    batch = torch.stack([prep(Image.open(io.BytesIO(p))) for p in pngs])
    with torch.no_grad():
        return mnist_net()(batch).argmax(1).tolist()


def mnist_attributions(png):
    """Integrated gradients of the first class, as the vision handler explains."""
    from captum.attr import IntegratedGradients
    from PIL import Image
    from torchvision import transforms

    prep = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    x = prep(Image.open(io.BytesIO(png))).unsqueeze(0)
    return IntegratedGradients(mnist_net()).attribute(x, target=0, n_steps=15).numpy()


def tiny_reference(pngs):
    """image_classifier's answer for each PNG: the top-5 labels and probabilities."""
    from PIL import Image
    from torchvision import transforms

    prep = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    batch = torch.stack([prep(Image.open(io.BytesIO(p))) for p in pngs])
    with torch.no_grad():
        probs, classes = torch.topk(torch.softmax(tiny_net()(batch), dim=1), 5, dim=1)
    return [{LABELS[c]: p for c, p in zip(cs, ps)}
            for cs, ps in zip(classes.tolist(), probs.tolist())]


def vision_batch(pngs, prep):
    from PIL import Image

    return torch.stack([prep(Image.open(io.BytesIO(p)).convert("RGB")) for p in pngs])


def seg_reference(pngs):
    """image_segmenter's answer: [H][W][class, probability] per image."""
    from torchvision import transforms

    prep = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    with torch.no_grad():
        probs = torch.softmax(seg_net()(vision_batch(pngs, prep))["out"], dim=1)
    best = torch.max(probs, dim=1)
    return torch.stack([best.indices.type(best.values.dtype), best.values], dim=3).tolist()


def det_reference(pngs):
    """object_detector's answer: per image, {label: box, "score": s} for scores >= 0.5."""
    from torchvision import transforms

    with torch.no_grad():
        rows = det_net()(vision_batch(pngs, transforms.ToTensor()))
    return [[{DET_LABELS[str(int(label))]: box, "score": score}
             for box, label, score in zip(row["boxes"].tolist(), row["labels"].tolist(),
                                          row["scores"].tolist()) if score >= 0.5]
            for row in rows]


def text_reference(text):
    """text_classifier's answer for one text: {label: probability}."""
    from ts.torch_handler.text_classifier import TextClassifier
    from ts.handler_utils.text_utils import ngrams_iterator

    vocab = text_vocab()
    ids = torch.as_tensor([vocab[g] for g in ngrams_iterator(text_tokens(TextClassifier(), text), 2)])
    with torch.no_grad():
        probs = torch.softmax(text_net()(ids, torch.as_tensor([0])), dim=1)[0].tolist()
    return {TEXT_LABELS[str(i)]: p for i, p in enumerate(probs)}


def solid_png(rgb, size=(40, 30)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, tuple(rgb)).save(buf, format="PNG")
    return buf.getvalue()
