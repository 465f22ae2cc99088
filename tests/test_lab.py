"`make lab` starts JupyterLab with the package importable: it answers on localhost, then it is stopped."
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_answers_on_localhost(tmp_path):
    port = free_port()
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_PORT={port}",
                            f"LAB_ARGS=--ServerApp.ip=127.0.0.1 --ServerApp.runtime_dir={tmp_path}"],
                           cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        answer, deadline = None, time.time() + 120
        while answer is None and time.time() < deadline and lab.poll() is None:
            try: answer = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2))
            except OSError: time.sleep(1)
        assert answer is not None, (tmp_path / "lab.log").read_text()[-2000:]
        assert "version" in answer
        lab_page = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10).read().decode()
        assert "JupyterLab" in lab_page or "jupyter" in lab_page.lower()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try: lab.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(lab.pid, signal.SIGKILL)
    assert lab.poll() is not None
