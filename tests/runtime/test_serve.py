import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from modelsync.pull import pull
from modelsync.serve import READY_CACHE_SECONDS

from .helpers import popen_cli, run_cli


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def served_process(client, bucket, publish, tmp_path):
    publish("m", {"a.bin": b"a" * 100, "b/c.txt": b"c"})
    dest = tmp_path / "d"
    pull(client, bucket, dest)
    proc = popen_cli("serve", "--host", "127.0.0.1", "--port", "0", "--dest", dest)
    line = proc.stderr.readline()
    assert "listening on" in line, line
    port = int(line.split("127.0.0.1:")[1].split(",")[0])
    proc.dest = dest
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def served(served_process):
    proc, port = served_process
    return proc.dest, port


def test_health_ready_and_models(served):
    dest, port = served
    base = f"http://127.0.0.1:{port}"
    assert get(f"{base}/healthz") == (200, {"status": "ok"})
    status, body = get(f"{base}/readyz")
    assert status == 200 and body["ready"] is True
    status, models = get(f"{base}/models")
    assert status == 200 and len(models) == 1
    assert models[0]["name"] == "m" and models[0]["files"] == 2 and models[0]["size"] == 101
    assert models[0]["version"] == os.readlink(dest / "m").rsplit("/", 1)[1]
    assert get(f"{base}/nope")[0] == 404


def test_readyz_fails_while_the_models_do_not_verify(served):
    dest, port = served
    os.unlink(dest / "m" / "a.bin")
    time.sleep(READY_CACHE_SECONDS + 0.1)  # readiness is re-checked at most every 5 s
    status, body = get(f"http://127.0.0.1:{port}/readyz")
    assert status == 503 and body["problems"] == ["m: files-differ"]  # the details go to the log only
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # alive, just not ready


def test_healthcheck_command(served):
    _dest, port = served
    assert run_cli("healthcheck", env={"MODELSYNC_PORT": str(port)}).returncode == 0
    down = run_cli("healthcheck", "--port", "1", "--timeout", "1")
    assert down.returncode == 1 and "unreachable" in down.stderr


def test_serve_refuses_bad_model_specs_before_listening(tmp_path):
    """Review finding 6: MODELSYNC_MODELS='bad name!' used to give a healthy server whose /readyz died."""
    from .helpers import assert_one_line_error

    proc = run_cli("serve", "--host", "127.0.0.1", "--port", "0", "--dest", tmp_path,
                   env={"MODELSYNC_MODELS": "bad name!"}, timeout=20)
    assert proc.returncode == 2
    assert_one_line_error(proc, "invalid model name 'bad name!'")
    assert "listening" not in proc.stderr


@pytest.mark.parametrize("args, env", [(["--port", "99999"], {}), (["--port", "-1"], {}),
                                       ([], {"MODELSYNC_PORT": "99999"})])
def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path, args, env):
    from .helpers import assert_one_line_error

    proc = run_cli("serve", "--host", "127.0.0.1", "--dest", tmp_path, *args, env=env, timeout=20)
    assert proc.returncode == 2
    assert_one_line_error(proc, "99999" if "99999" in str((args, env)) else "-1", "0-65535")


def test_readyz_answers_503_when_a_model_path_is_a_real_directory(tmp_path):
    """A problem while checking must be an answer, never a dropped connection."""
    dest = tmp_path / "d"
    (dest / "m").mkdir(parents=True)
    proc = popen_cli("serve", "--host", "127.0.0.1", "--port", "0", "--dest", dest, env={"MODELSYNC_MODELS": "m"})
    try:
        line = proc.stderr.readline()
        assert "listening on" in line, line
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body["problems"] == ["m: not-installed"]
        assert get(f"http://127.0.0.1:{port}/models") == (200, [])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_verify_states_declare_their_record():
    """Review finding 13: one ModelState (verify's), with .record a declared field."""
    import dataclasses

    import modelsync.serve
    from modelsync.verify import ModelState

    assert "record" in {f.name for f in dataclasses.fields(ModelState)}
    assert ModelState("m", None).record is None
    assert modelsync.serve.ModelState is ModelState  # no second class of that name (serve's is ReadinessCache)


def test_healthcheck_refuses_a_port_out_of_range_in_one_line():
    from .helpers import assert_one_line_error

    proc = run_cli("healthcheck", "--port", "99999")
    assert proc.returncode == 2
    assert_one_line_error(proc, "--port 99999 is not a TCP port", "0-65535")


def test_sigterm_shuts_serve_down_cleanly(served_process):
    """ECS stops the app with SIGTERM; Python as PID 1 used to ignore it until SIGKILL 30 s later."""
    proc, port = served_process
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "modelsync serve: stopped by SIGTERM, shutting down" in err and "Traceback" not in err
