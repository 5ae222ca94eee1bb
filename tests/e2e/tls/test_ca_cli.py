"""
`peephole ca` (init, path, export in three formats, help) and the CA home:
--home, PEEPHOLE_HOME, the conf key `home`; created on the first start with
the key readable by its owner only; a group-readable key stops `run`.
"""
import os
import stat
import subprocess

import pytest

from conftest import free_port, kill_proc, run_cli

from .conftest import OPENSSL, PEEPHOLE_BIN, openssl_x509, tcurl


def _fp(pem_bytes):
    return openssl_x509(pem_bytes, "-fingerprint", "-sha256").strip()


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ca_init_path_and_force(tmp_path):
    home = tmp_path / "home"
    cp = run_cli("ca", "init", "--home", home)
    assert cp.returncode == 0, cp.stderr
    pem, key = home / "ca.pem", home / "ca.key"
    assert pem.exists() and key.exists()
    assert _mode(key) == 0o600
    text = openssl_x509(pem.read_bytes(), "-text")
    assert "CA:TRUE" in text
    assert "Certificate Sign" in text
    first = _fp(pem.read_bytes())

    # no silent replacement
    cp = run_cli("ca", "init", "--home", home)
    assert cp.returncode != 0
    assert "--force" in cp.stderr
    assert _fp(pem.read_bytes()) == first

    cp = run_cli("ca", "init", "--force", "--home", home)
    assert cp.returncode == 0, cp.stderr
    assert _fp(pem.read_bytes()) != first
    assert _mode(key) == 0o600

    cp = run_cli("ca", "path", "--home", home)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == str(pem)


def test_ca_export_formats(tmp_path):
    home = tmp_path / "home"
    assert run_cli("ca", "init", "--home", home).returncode == 0
    want = _fp((home / "ca.pem").read_bytes())

    # pem to stdout (the default) and to a file
    cp = run_cli("ca", "export", "--home", home)
    assert cp.returncode == 0, cp.stderr
    assert "PRIVATE KEY" not in cp.stdout
    assert _fp(cp.stdout.encode()) == want
    out = tmp_path / "ca-out.pem"
    cp = run_cli("ca", "export", "--format", "pem", "--out", out,
                 "--home", home)
    assert cp.returncode == 0, cp.stderr
    assert _fp(out.read_bytes()) == want

    der = tmp_path / "ca.der"
    cp = run_cli("ca", "export", "--format", "der", "--out", der,
                 "--home", home)
    assert cp.returncode == 0, cp.stderr
    assert der.read_bytes()[0] == 0x30  # a DER SEQUENCE, not PEM text
    assert openssl_x509(der.read_bytes(), "-fingerprint", "-sha256",
                        inform="DER").strip() == want

    p12 = tmp_path / "ca.p12"
    cp = run_cli("ca", "export", "--format", "p12", "--out", p12,
                 "--home", home)
    assert cp.returncode == 0, cp.stderr
    certs = subprocess.run([OPENSSL, "pkcs12", "-in", str(p12), "-nokeys",
                            "-passin", "pass:"], capture_output=True,
                           timeout=30)
    assert certs.returncode == 0, certs.stderr
    assert _fp(certs.stdout) == want
    keys = subprocess.run([OPENSSL, "pkcs12", "-in", str(p12), "-nocerts",
                           "-nodes", "-passin", "pass:"],
                          capture_output=True, timeout=30)
    assert b"PRIVATE KEY" not in keys.stdout  # never the key


def test_ca_export_bad_format_exit_2(tmp_path):
    home = tmp_path / "home"
    assert run_cli("ca", "init", "--home", home).returncode == 0
    cp = run_cli("ca", "export", "--format", "jks", "--home", home)
    assert cp.returncode == 2
    assert "jks" in cp.stderr
    assert cp.stdout == ""


def test_ca_help_linux(tmp_path):
    home = tmp_path / "home"
    assert run_cli("ca", "init", "--home", home).returncode == 0
    cp = run_cli("ca", "help", "--os", "linux", "--home", home)
    assert cp.returncode == 0, cp.stderr
    assert "update-ca-certificates" in cp.stdout
    assert str(home / "ca.pem") in cp.stdout


def test_first_start_creates_ca_with_private_key(tls_proxy, tls_nginx, certs):
    p = tls_proxy("--upstream-ca", certs.ca)
    assert _mode(p.home / "ca.key") == 0o600
    assert "CA:TRUE" in openssl_x509(p.ca_pem.read_bytes(), "-text")
    first = _fp(p.ca_pem.read_bytes())
    # a restart keeps the CA: a client that trusts it keeps working
    p.restart()
    assert _fp(p.ca_pem.read_bytes()) == first
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small")
    assert (r.rc, r.code) == (0, 200), r.stderr


def test_home_from_env_and_conf(tls_proxy, tls_nginx, certs, tmp_path):
    envhome = tmp_path / "envhome"
    p = tls_proxy("--upstream-ca", certs.ca, home=None,
                  env_extra={"PEEPHOLE_HOME": str(envhome)})
    assert (envhome / "ca.pem").exists()
    r = tcurl(p, f"https://alpha.test:{tls_nginx.port}/small",
              cacert=envhome / "ca.pem")
    assert (r.rc, r.code) == (0, 200), r.stderr

    confhome = tmp_path / "confhome"
    q = tls_proxy("--upstream-ca", certs.ca, home=None,
                  conf_extra={"home": str(confhome)},
                  env_extra={"PEEPHOLE_HOME": str(envhome)})
    assert (confhome / "ca.pem").exists()
    assert _fp((confhome / "ca.pem").read_bytes()) != \
        _fp((envhome / "ca.pem").read_bytes())
    r = tcurl(q, f"https://alpha.test:{tls_nginx.port}/small",
              cacert=confhome / "ca.pem")
    assert (r.rc, r.code) == (0, 200), r.stderr


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_run_refuses_readable_ca_key(tmp_path, mode):
    home = tmp_path / "home"
    assert run_cli("ca", "init", "--home", home).returncode == 0
    os.chmod(home / "ca.key", mode)
    port = free_port()
    proc = subprocess.Popen(
        [PEEPHOLE_BIN, "run", "--listen", f"127.0.0.1:{port}", "--db",
         str(tmp_path / "p.db"), "--home", str(home), "--quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        kill_proc(proc)
        out, err = proc.communicate(timeout=10)
        pytest.fail("peephole run started with a readable ca.key")
    assert proc.returncode != 0
    assert b"chmod" in err, err
    assert b"ca.key" in err, err
    assert _mode(home / "ca.key") == mode  # not silently "fixed"


def _run_fails(*args):
    """`peephole run` that must refuse to start: (exit code, stderr)."""
    p = subprocess.run([PEEPHOLE_BIN, "run", "--listen",
                        f"127.0.0.1:{free_port()}", *map(str, args)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20)
    return p.returncode, p.stderr


def test_unreadable_ca_files_say_what_and_what_to_do(tmp_path):
    home = tmp_path / "home"
    assert run_cli("ca", "init", "--home", home).returncode == 0
    (home / "ca.pem").write_text("not a certificate\n")
    rc, err = _run_fails("--home", home, "--db", tmp_path / "a.db")
    assert rc != 0
    assert str(home / "ca.pem") in err and "cannot read it" in err, err
    assert "ca init --force" in err
    assert "error:" not in err  # no raw OpenSSL error string

    good = tmp_path / "good"
    assert run_cli("ca", "init", "--home", good).returncode == 0
    bad = tmp_path / "bad.pem"
    bad.write_text("garbage\n")
    rc, err = _run_fails("--home", good, "--db", tmp_path / "b.db",
                         "--upstream-ca", bad)
    assert rc != 0
    assert f"upstream-ca {bad}: no certificate could be read" in err, err
    assert "PEM" in err
    rc, err = _run_fails("--home", good, "--db", tmp_path / "c.db",
                         "--upstream-ca", tmp_path / "missing.pem")
    assert rc != 0
    assert "missing.pem: No such file or directory" in err, err
