#!/usr/bin/env python3
"""Tests of check_layers.py: the real tree passes, and a scratch tree with a
deliberately wrong include (the gateway reaching into the model server) fails
with the file, line and rule named."""
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "check_layers.py"


def run(root):
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)],
                          capture_output=True, text=True)


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp())
        (self.tmp / "docs").mkdir()
        shutil.copy(ROOT / "docs" / "ARCHITECTURE.md", self.tmp / "docs")
        for folder in ("common", "net", "link", "server", "gateway", "controlplane",
                       "controlplane/local", "backends/python", "autoscaler"):
            (self.tmp / "src" / folder).mkdir(parents=True)
        (self.tmp / "apps").mkdir()
        self.write("src/server/rest_handler.cc", '#include "net/http_types.h"\n')
        self.write("src/gateway/gateway.cc",
                   '#include "net/http_server.h"\n#include "gateway/upstream.h"\n')
        self.write("src/controlplane/controller.cc", '#include "gateway/route_table.h"\n')
        self.write("src/controlplane/local/store.cc",
                   '#include "controlplane/reconciler.h"\n#include "storage/storage.h"\n')
        self.write("apps/main.cc", '#include "server/rest_handler.h"\n')

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write(self, path, text):
        (self.tmp / path).write_text(text)

    def test_the_tree_passes(self):
        r = run(ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_allowed_includes_pass(self):
        r = run(self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_wrong_include_fails_naming_file_line_and_rule(self):
        self.write("src/gateway/gateway.cc",
                   '#include "net/http_server.h"\n#include "server/model_registry.h"\n')
        r = run(self.tmp)
        self.assertEqual(r.returncode, 1)
        self.assertIn('src/gateway/gateway.cc:2: includes "server/model_registry.h"', r.stderr)
        self.assertIn("gateway may include only common, link, net", r.stderr)

    def test_a_single_header_contract_does_not_open_its_folder(self):
        self.write("src/controlplane/controller.cc", '#include "gateway/gateway.h"\n')
        r = run(self.tmp)
        self.assertEqual(r.returncode, 1)
        self.assertIn('includes "gateway/gateway.h"', r.stderr)

    def test_the_plan_does_not_reach_into_its_executor(self):
        self.write("src/controlplane/routing.cc", '#include "controlplane/local/supervisor.h"\n')
        r = run(self.tmp)
        self.assertEqual(r.returncode, 1)
        self.assertIn('src/controlplane/routing.cc:1: includes "controlplane/local/supervisor.h"',
                      r.stderr)

    def test_pure_layer_includes_nothing(self):
        self.write("src/autoscaler/kpa.cc", '#include "common/logging.h"\n')
        self.assertEqual(run(self.tmp).returncode, 1)

    def test_sublayer_gets_its_parents_rules_and_its_own(self):
        self.write("src/backends/python/python_backend.cc",
                   '#include "protocol/json_util.h"\n#include "common/status.h"\n')
        self.assertEqual(run(self.tmp).returncode, 0, run(self.tmp).stderr)
        self.write("src/backends/python/python_backend.cc", '#include "server/batcher.h"\n')
        self.assertEqual(run(self.tmp).returncode, 1)


if __name__ == "__main__":
    unittest.main()
