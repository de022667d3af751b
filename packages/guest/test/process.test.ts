import { mkdtempSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Envelope, Process } from "@gcs-bridge/protocol"
import { Transport } from "@gcs-bridge/transport"
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import { findPython } from "../src/internal/ptyHelper.js"
import type { Host } from "./host.js"
import { countTimers, Hr, Null, PATH, readText, setup, untilTimerArmed, writeText } from "./host.js"

const wait = (host: Host, pid: number, timeout = Process.InfiniteTimeout, containerId = Null) =>
  host.call(
    "WaitForProcess",
    new Process.ContainerWaitForProcess({ ContainerId: containerId, ProcessId: pid, TimeoutInMs: timeout })
  )

const exitCode = (host: Host, pid: number, containerId = Null) =>
  wait(host, pid, Process.InfiniteTimeout, containerId).pipe(
    Effect.map((r) => Option.getOrThrowWith(r.body, () => new Error(r.json)).ExitCode)
  )

describe("UVM processes", () => {
  it.effect("waits on more live processes than maxInFlight do not stop the guest serving", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ maxInFlight: 2 })
      yield* host.negotiate()
      const cats = yield* Effect.forEach([1, 2, 3], () =>
        host.exec(Null, { CommandArgs: ["cat"], Environment: { PATH } }, { stdin: true, stdout: true })
      )
      // Three waits outstanding for the processes' whole life, more than the two request slots;
      // all three are on the wire before DumpStacks.
      const sent = yield* Effect.forEach(cats, (cat) =>
        host.send(
          "WaitForProcess",
          new Process.ContainerWaitForProcess({
            ContainerId: Null,
            ProcessId: cat.pid,
            TimeoutInMs: Process.InfiniteTimeout
          })
        )
      )
      const stacks = yield* host.ok("DumpStacks", new Envelope.RequestBase({ ContainerId: Null }))
      expect(stacks.GuestStacks).toContain("gcs-bridge guest")
      yield* Effect.forEach(cats, (cat) => Option.getOrThrow(cat.stdin).endWrite)
      const exits = yield* Effect.forEach(sent, (id) =>
        Effect.map(
          host.response(id),
          (frame) => Option.getOrThrow(host.reply("WaitForProcess", frame).body).ExitCode
        )
      )
      expect(exits).toEqual([0, 0, 0])
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("relays stdin, stdout and stderr of cat, then reports exit 0 once", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const cat = yield* host.exec(
        Null,
        { CommandArgs: ["cat"], Environment: { PATH } },
        { stdin: true, stdout: true, stderr: true }
      )
      expect(cat.reply.result).toBe(0)
      expect(cat.pid).toBeGreaterThan(0)
      yield* writeText(Option.getOrThrow(cat.stdin), "hello through cat\n")
      expect(yield* readText(Option.getOrThrow(cat.stdout))).toBe("hello through cat\n")
      expect(yield* readText(Option.getOrThrow(cat.stderr))).toBe("")
      expect(yield* exitCode(host, cat.pid)).toBe(0)
      // The record of a UVM process is released after the first successful wait.
      const again = yield* wait(host, cat.pid)
      expect(again.json).toBe(
        '{"Result":-2147023728,"ActivityId":"00000000-0000-0000-0000-000000000000","ErrorMessage":"HRESULT: 0x80070490","ErrorRecords":[{"Result":-2147023728,"Message":"HRESULT: 0x80070490","ModuleName":"gcs","FileName":"","Line":4294967295}]}'
      )
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "runs the vector's command: separate stdout/stderr, exit 3, environment with HTML characters",
    () =>
      Effect.gen(function* () {
        const { host } = yield* setup()
        yield* host.negotiate()
        const sh = yield* host.exec(
          Null,
          {
            CommandArgs: ["/bin/sh", "-c", 'echo out; echo "$GREETING" >&2; exit 3'],
            WorkingDirectory: "/",
            Environment: { GREETING: "a<b>&c", PATH }
          },
          { stdout: true, stderr: true }
        )
        expect(yield* readText(Option.getOrThrow(sh.stdout))).toBe("out\n")
        expect(yield* readText(Option.getOrThrow(sh.stderr))).toBe("a<b>&c\n")
        expect(yield* exitCode(host, sh.pid)).toBe(3)
      }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("splits CommandLine into words without a shell, in WorkingDirectory", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => realpathSync(mkdtempSync(join(tmpdir(), "guest-cwd-")))),
        (made) => Effect.sync(() => rmSync(made, { recursive: true, force: true }))
      )
      const p = yield* host.exec(
        Null,
        {
          CommandLine: `sh -c 'printf "%s|" "$@"; pwd' argv0 'a b' "c \\"d\\"" e\\ f $HOME`,
          WorkingDirectory: dir,
          Environment: { PATH }
        },
        { stdout: true }
      )
      expect(p.reply.result).toBe(0)
      expect(yield* readText(Option.getOrThrow(p.stdout))).toBe(`a b|c "d"|e f|$HOME|${dir}\n`)
      expect(yield* exitCode(host, p.pid)).toBe(0)

      const operator = yield* host.exec(Null, { CommandLine: "echo a; rm -rf /tmp/nothing" }, {})
      expect(operator.reply.result).toBe(Hr.Fail)
      expect(operator.reply.message).toContain("shell operator")
      const unterminated = yield* host.exec(Null, { CommandLine: "echo 'oops" }, {})
      expect(unterminated.reply.message).toContain("unterminated single quote")
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("fails ExecuteProcess for a missing program, after dialling stdio", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const missing = yield* host.exec(
        Null,
        { CommandArgs: ["/nonexistent/program"], Environment: { PATH } },
        { stdout: true }
      )
      expect(missing.reply.result).toBe(Hr.Fail)
      expect(missing.reply.message).toBe(
        'failed to start process: exec: "/nonexistent/program": executable file not found'
      )
      expect(missing.reply.base.ErrorRecords[0]!.Message).toBe(missing.reply.message)
      const unknown = yield* host.exec(
        Null,
        { CommandArgs: ["gcs-bridge-no-such-program"], Environment: { PATH } },
        { stdout: true }
      )
      expect(unknown.reply.message).toBe(
        'failed to start process: exec: "gcs-bridge-no-such-program": executable file not found'
      )
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("starts a UVM process with the fds of streams not asked for closed, as the Linux GCS", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      // $0 shows that the program's argv[0] is the name given, not a path.
      const report = (fd: number) => [
        "sh",
        "-c",
        `s=; for fd in 0 1 2; do test -e /proc/self/fd/$fd && s="$s $fd:open" || s="$s $fd:closed"; done; echo "$0$s" >&${fd}`
      ]
      const outOnly = yield* host.exec(
        Null,
        { CommandArgs: report(1), Environment: { PATH } },
        { stdout: true }
      )
      expect(yield* readText(Option.getOrThrow(outOnly.stdout))).toBe("sh 0:closed 1:open 2:closed\n")
      expect(yield* exitCode(host, outOnly.pid)).toBe(0)
      const errOnly = yield* host.exec(
        Null,
        { CommandArgs: report(2), Environment: { PATH } },
        { stderr: true }
      )
      expect(yield* readText(Option.getOrThrow(errOnly.stderr))).toBe("sh 0:closed 1:closed 2:open\n")
      expect(yield* exitCode(host, errOnly.pid)).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("fails ExecuteProcess when a stdio port has no listener, starting nothing", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const reply = yield* host.call(
        "ExecuteProcess",
        new Process.ContainerExecuteProcess({
          ContainerId: Null,
          Settings: new Process.ExecuteProcessSettings({
            ProcessParameters: new Process.ProcessParameters({
              CommandArgs: ["true"],
              CreateStdOutPipe: true
            }),
            VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({ StdOut: 0x4000fff0 })
          })
        })
      )
      expect(reply.result).toBe(Hr.Fail)
      expect(reply.message).toMatch(/^failed creating stdout Connection: /)
      expect(yield* host.ok("DumpStacks", new Envelope.RequestBase({ ContainerId: Null }))).toMatchObject({
        GuestStacks: expect.stringContaining("uvm processes: 0")
      })
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("reports 4294967295 for a UVM process killed by a signal", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const p = yield* host.exec(Null, { CommandArgs: ["sh", "-c", "kill -9 $$"], Environment: { PATH } }, {})
      expect(yield* exitCode(host, p.pid)).toBe(4294967295)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("times a wait out with 0xC0370109 and answers later waits with the exit code", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const cat = yield* host.exec(
        Null,
        { CommandArgs: ["cat"], Environment: { PATH } },
        { stdin: true, stdout: true }
      )
      const waiting = yield* host.send(
        "WaitForProcess",
        new Process.ContainerWaitForProcess({ ContainerId: Null, ProcessId: cat.pid, TimeoutInMs: 100 })
      )
      yield* untilTimerArmed
      yield* TestClock.adjust("100 millis")
      const timedOut = host.reply("WaitForProcess", yield* host.response(waiting))
      expect(timedOut.result).toBe(Hr.Timeout)
      expect(timedOut.message).toBe("HRESULT: 0xc0370109")
      // A timed-out wait does not release the process; ending stdin ends cat.
      yield* writeText(Option.getOrThrow(cat.stdin), "")
      expect(yield* exitCode(host, cat.pid)).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "answers a wait for an unknown pid, signals and resizes of UVM processes like the Linux GCS",
    () =>
      Effect.gen(function* () {
        const { host } = yield* setup()
        yield* host.negotiate()
        expect((yield* wait(host, 999999)).result).toBe(Hr.NotFound)
        const systemNotFound =
          '{"Result":-1070137074,"ActivityId":"00000000-0000-0000-0000-000000000000","ErrorMessage":"HRESULT: 0xc037010e","ErrorRecords":[{"Result":-1070137074,"Message":"HRESULT: 0xc037010e","ModuleName":"gcs","FileName":"","Line":4294967295}]}'
        const cat = yield* host.exec(
          Null,
          { CommandArgs: ["cat"], Environment: { PATH } },
          { stdin: true, stdout: true }
        )
        const signal = yield* host.call(
          "SignalProcess",
          new Process.ContainerSignalProcess({ ContainerId: Null, ProcessId: cat.pid })
        )
        expect(signal.json).toBe(systemNotFound)
        const resize = yield* host.call(
          "ResizeConsole",
          new Process.ContainerResizeConsole({ ContainerId: Null, ProcessId: cat.pid, Height: 24, Width: 80 })
        )
        expect(resize.json).toBe(systemNotFound)
        yield* writeText(Option.getOrThrow(cat.stdin), "")
        expect(yield* exitCode(host, cat.pid)).toBe(0)
      }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("relays a large output exactly, under backpressure", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const size = 3 * 1024 * 1024 + 17
      const p = yield* host.exec(
        Null,
        { CommandArgs: ["head", "-c", String(size), "/dev/zero"], Environment: { PATH } },
        { stdout: true }
      )
      const out = yield* readText(Option.getOrThrow(p.stdout))
      expect(out.length).toBe(size)
      expect(yield* exitCode(host, p.pid)).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("gives console processes a terminal when the pty helper can run, plain pipes otherwise", () =>
    Effect.gen(function* () {
      const python = yield* findPython("python3")
      const { host } = yield* setup()
      yield* host.negotiate()
      const script =
        'if test -t 0 && test -t 1; then echo tty; else echo no-tty; fi; echo to-stderr >&2; read line; echo "got $line"'
      const p = yield* host.exec(
        Null,
        { CommandArgs: ["sh", "-c", script], EmulateConsole: true, Environment: { PATH } },
        { stdin: true, stdout: true }
      )
      expect(p.reply.result).toBe(0)
      yield* writeText(Option.getOrThrow(p.stdin), "x\n")
      const out = yield* readText(Option.getOrThrow(p.stdout))
      // Either way stderr is not separate: it shows up on stdout.
      expect(out).toContain("to-stderr")
      expect(out).toContain("got x")
      expect(out).toContain(Option.isSome(python) ? "tty" : "no-tty")
      if (Option.isSome(python)) expect(out).not.toContain("no-tty")
      expect(yield* exitCode(host, p.pid)).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )

  it.effect("without the pty helper a console process gets pipes, stderr folded into stdout", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({ console: "none" })
      yield* host.negotiate()
      const p = yield* host.exec(
        Null,
        {
          CommandArgs: ["sh", "-c", "test -t 1 || echo no-tty; echo err >&2"],
          EmulateConsole: true,
          Environment: { PATH }
        },
        { stdout: true, stderr: true }
      )
      const out = yield* readText(Option.getOrThrow(p.stdout))
      expect(out).toContain("no-tty\n")
      expect(out).toContain("err\n")
      expect(yield* readText(Option.getOrThrow(p.stderr))).toBe("")
      expect(yield* exitCode(host, p.pid)).toBe(0)
    }).pipe(countTimers, Effect.provide(Transport.layerMemory))
  )
})
