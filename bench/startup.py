#!/usr/bin/env python3
"""One sidecar start, for bench/compare's startup section.

    startup.py ADMIN_PORT LOG_FILE COMMAND...

Runs COMMAND (the sidecar, with only PATH and RUST_LOG in its environment),
polls http://127.0.0.1:ADMIN_PORT/readyz every millisecond until it answers
200 (at most 10 s), reads the process's VmRSS at that moment (before any
request but the polls), stops it with SIGTERM and waits for it to exit.
Prints "MS_TO_READY VMRSS_KB"; exits non-zero if it never got ready.
"""
import os
import socket
import subprocess
import sys
import time


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def main():
    port, log, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    env = {"PATH": os.environ["PATH"], "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    with open(log, "ab") as out:
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        try:
            while not ready(port):
                if proc.poll() is not None:
                    sys.exit(f"startup.py: the sidecar exited ({proc.returncode}) before /readyz answered 200")
                if time.monotonic_ns() - t0 > 10e9:
                    sys.exit("startup.py: no 200 from /readyz within 10 s")
                time.sleep(0.001)
            ms = (time.monotonic_ns() - t0) / 1e6
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next(line.split()[1] for line in f if line.startswith("VmRSS:"))
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    print(f"{ms:.1f} {rss}")


if __name__ == "__main__":
    main()
