/**
 * Console processes need a pseudo-terminal, and Node has none without a native
 * module. When a Python 3 interpreter is present we run the program under a
 * small helper written against Python's standard `pty`/`termios` modules:
 *
 * - Node spawns `python3 -I -c <HELPER>` with five pipes: 0 = bytes for the
 *   terminal, 1 = bytes from the terminal, 2 = the helper's own diagnostics,
 *   3 = control (first line: the JSON launch request, then `resize R C` and
 *   `signal N` lines), 4 = status (`ok <pid>` or `error <errno> <text>`).
 * - The helper forks; the child becomes a session leader with the pty slave as
 *   controlling terminal, changes directory and `execvpe`s the argv with the
 *   given environment (argv, cwd and environment come over the control pipe,
 *   never through a shell and never on the helper's own command line). Exec
 *   failures come back over a close-on-exec pipe, so a missing program is an
 *   error before the guest answers ExecuteProcess, as with the Linux GCS.
 * - The helper relays stdin → pty and pty → stdout without blocking, applies
 *   resizes with `TIOCSWINSZ` (the kernel then sends SIGWINCH), delivers
 *   signals to the child, turns the end of stdin into the terminal's VEOF
 *   character (a terminal has no other way to say end-of-file), kills the
 *   child's process group when the control pipe closes (the guest is gone)
 *   and, when asked (`kill_group`, a container's init), right after the child
 *   exited,
 *   and finally exits with the child's status — re-raising the child's
 *   terminating signal on itself, so the guest sees the same wait status.
 *
 * `script -q -c` (util-linux) is not used: it takes a shell command line, which
 * would make a host string a shell word, and offers no way to resize.
 */
import { spawn } from "node:child_process"
import { Effect, Option } from "effect"

/** The helper program, run with `python3 -I -c`. */
export const helperSource = String.raw`
import errno, fcntl, json, os, resource, select, signal, struct, sys, termios

CTL, STATUS = 3, 4

def read_request():
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(CTL, 65536)
        if not chunk:
            raise SystemExit(126)
        data += chunk
        if len(data) > 16 * 1024 * 1024:
            raise SystemExit(126)
    line, rest = data.split(b"\n", 1)
    return json.loads(line.decode("utf-8")), rest

def report(text):
    os.write(STATUS, text.encode("utf-8", "surrogateescape") + b"\n")

def main():
    request, ctl_buf = read_request()
    argv = request["argv"]
    env = request["env"]
    cwd = request["cwd"]
    want_stdin = bool(request["stdin"])
    kill_group = bool(request["kill_group"])
    master, slave = os.openpty()
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            for fd in (CTL, STATUS, master, slave):
                if fd > 2:
                    os.close(fd)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        except BaseException as e:
            code = getattr(e, "errno", None) or 0
            text = getattr(e, "strerror", None) or str(e)
            try:
                os.write(wr, ("%d %s" % (code, text)).encode("utf-8", "replace"))
            finally:
                os._exit(127)
        os._exit(127)
    os.close(slave)
    os.close(wr)
    failure = b""
    while True:
        chunk = os.read(rd, 4096)
        if not chunk:
            break
        failure += chunk
    os.close(rd)
    if failure:
        os.waitpid(pid, 0)
        report("error " + failure.decode("utf-8", "replace").replace("\n", " "))
        return 127
    report("ok %d" % pid)
    os.close(STATUS)

    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for fd in (0, 1, CTL, master):
        os.set_blocking(fd, False)
    try:
        veof = termios.tcgetattr(master)[6][termios.VEOF]
    except Exception:
        veof = b"\x04"

    to_master = bytearray()
    to_out = bytearray()
    stdin_open = want_stdin
    out_open = True
    ctl_open = True
    master_open = True
    status = None

    def control(line):
        parts = line.split()
        try:
            if len(parts) == 3 and parts[0] == b"resize":
                rows, cols = int(parts[1]), int(parts[2])
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            elif len(parts) == 2 and parts[0] == b"signal":
                os.kill(pid, int(parts[1]))
        except (OSError, ValueError, OverflowError, struct.error) as e:
            sys.stderr.write("control %r: %s\n" % (line, e))

    def handle_ctl(data):
        nonlocal ctl_buf
        ctl_buf += data
        while b"\n" in ctl_buf:
            line, ctl_buf = ctl_buf.split(b"\n", 1)
            control(line)
        if len(ctl_buf) > 4096:
            ctl_buf = b""

    handle_ctl(b"")
    while True:
        try:
            done, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, st = pid, 0
        if done == pid:
            status = st
            if kill_group:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            break
        readers = [wake_r]
        writers = []
        if ctl_open:
            readers.append(CTL)
        if stdin_open and not to_master:
            readers.append(0)
        if master_open and to_master:
            writers.append(master)
        if master_open and not to_out:
            readers.append(master)
        if to_out:
            writers.append(1)
        r, w, _ = select.select(readers, writers, [])
        if wake_r in r:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if CTL in r:
            try:
                data = os.read(CTL, 4096)
            except BlockingIOError:
                data = None
            if data == b"":
                ctl_open = False
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            elif data:
                handle_ctl(data)
        if 0 in r:
            try:
                data = os.read(0, 65536)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                stdin_open = False
                to_master += veof
            elif data:
                to_master += data
        if master in w:
            try:
                n = os.write(master, to_master)
                del to_master[:n]
            except BlockingIOError:
                pass
            except OSError:
                master_open = False
                to_master.clear()
        if master in r:
            try:
                data = os.read(master, 65536)
                if data:
                    to_out += data
                else:
                    master_open = False
            except BlockingIOError:
                pass
            except OSError:
                master_open = False
        if 1 in w:
            try:
                n = os.write(1, to_out)
                del to_out[:n]
            except BlockingIOError:
                pass
            except OSError:
                out_open = False
            if not out_open:
                to_out.clear()

    while master_open:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        to_out += data
    os.set_blocking(1, True)
    if out_open and to_out:
        try:
            view = memoryview(bytes(to_out))
            while view:
                n = os.write(1, view)
                view = view[n:]
        except OSError:
            pass

    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        sig = -code
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.set_wakeup_fd(-1)
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
        except (OSError, ValueError):
            pass
        return 128 + sig
    return code

sys.exit(main())
`

/**
 * The absolute path of a Python 3 interpreter that has the modules the helper
 * needs, found by asking `python` itself (so a version-manager shim is resolved
 * to the real binary and does not inject variables into the child's
 * environment), or `None` when there is none.
 */
export const findPython = (python: string): Effect.Effect<Option.Option<string>> =>
  Effect.callback<Option.Option<string>>((resume) => {
    let out = ""
    let settled = false
    const settle = (value: Option.Option<string>) => {
      if (!settled) {
        settled = true
        resume(Effect.succeed(value))
      }
    }
    const child = spawn(
      python,
      [
        "-I",
        "-c",
        "import fcntl, json, pty, resource, select, termios, sys; sys.stdout.write(sys.executable)"
      ],
      { stdio: ["ignore", "pipe", "ignore"] }
    )
    child.on("error", () => settle(Option.none()))
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => {
      if (out.length < 4096) out += chunk
    })
    child.on("close", (code) => settle(code === 0 && out.startsWith("/") ? Option.some(out) : Option.none()))
    return Effect.sync(() => {
      settled = true
      child.kill("SIGKILL")
    })
  })
