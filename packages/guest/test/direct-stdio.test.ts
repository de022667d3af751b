import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { MessageType, Process } from "@gcs-bridge/protocol"
import type { Connection } from "@gcs-bridge/transport"
import { HybridAddress, Transport } from "@gcs-bridge/transport"
import type { Layer } from "effect"
import { Effect, Fiber, Option, Stream } from "effect"
import { Guest } from "../src/index.js"
import { findPython } from "../src/internal/ptyHelper.js"
import type { Host } from "./host.js"
import { accept, Null, PATH, readText, setup, writeText } from "./host.js"

const EightMiB = 8 * 1024 * 1024

/** A host on a hybrid address in a temp dir and a guest dialling its Unix sockets, over `layer`'s engine. */
const hybridSetup = Effect.gen(function* () {
  const dir = mkdtempSync(join(tmpdir(), "guest-direct-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  const transport = yield* Transport
  const address = new HybridAddress({ path: join(dir, "vm.sock") })
  const listener = yield* Effect.orDie(transport.listen(address, MessageType.LinuxGcsVsockPort))
  yield* Effect.forkScoped(Guest.run({ address: Guest.addressForHost(address), once: true }))
  const host = yield* accept(transport, address, listener)
  yield* host.negotiate()
  return host
})

const exitCode = (host: Host, pid: number) =>
  host
    .ok(
      "WaitForProcess",
      new Process.ContainerWaitForProcess({
        ContainerId: Null,
        ProcessId: pid,
        TimeoutInMs: Process.InfiniteTimeout
      })
    )
    .pipe(Effect.map((r) => r.ExitCode))

const countBytes = (connection: Connection) =>
  Stream.runFold(
    connection.stream,
    () => 0,
    (n, chunk) => n + chunk.length
  ).pipe(Effect.orDie)

const zeros = new Uint8Array(64 * 1024)

/**
 * A shell command printing, per fd, the name of the socket's peer: the host's `<path>_<port>` when the fd is
 * the stdio connection itself, `unnamed` for the socketpair Node uses as a "pipe" (`readlink` shows
 * `socket:[…]` for both). Needs Python; `undefined` without it.
 */
const peersOf = (fds: string) =>
  Effect.map(findPython("python3"), (python) =>
    Option.isNone(python)
      ? undefined
      : `${python.value} -c 'import socket, sys
for fd in sys.argv[1:]: print(socket.fromfd(int(fd), socket.AF_UNIX, socket.SOCK_STREAM).getpeername() or "unnamed")' ${fds}`
  )

const engines: ReadonlyArray<readonly [string, Layer.Layer<Transport>]> = [
  ["node", Transport.layerNode],
  ["native", Transport.layer]
]

describe.each(engines)("a UVM process's stdio over the %s engine", (_, layer) => {
  it.live("has the stdio sockets as fds 0-2: 8 MiB of stdout reach the host, and the exit code", () =>
    Effect.gen(function* () {
      const peers = yield* peersOf("0 1 2")
      const host = yield* hybridSetup
      const script = `${peers ?? "echo x; echo x; echo x"} >&2; head -c ${EightMiB} /dev/zero; exit 3`
      const p = yield* host.exec(
        Null,
        { CommandArgs: ["sh", "-c", script], Environment: { PATH } },
        { stdin: true, stdout: true, stderr: true }
      )
      const err = yield* Effect.forkChild(readText(Option.getOrThrow(p.stderr)))
      expect(yield* countBytes(Option.getOrThrow(p.stdout))).toBe(EightMiB)
      const fds = (yield* Fiber.join(err)).split("\n")
      expect(fds.length).toBe(4)
      if (peers !== undefined) for (const peer of fds.slice(0, 3)) expect(peer).toMatch(/vm\.sock_\d+$/)
      expect(yield* exitCode(host, p.pid)).toBe(3)
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

  it.live("stdin: the process reads every byte the host writes, then the host's EOF", () =>
    Effect.gen(function* () {
      const peers = yield* peersOf("0")
      const host = yield* hybridSetup
      const p = yield* host.exec(
        Null,
        { CommandArgs: ["sh", "-c", `${peers ?? "echo x.vm.sock_0"}; exec wc -c`], Environment: { PATH } },
        { stdin: true, stdout: true }
      )
      const stdin = Option.getOrThrow(p.stdin)
      const out = yield* Effect.forkChild(readText(Option.getOrThrow(p.stdout)))
      for (let sent = 0; sent < EightMiB; sent += zeros.length) yield* Effect.orDie(stdin.write(zeros))
      yield* Effect.orDie(stdin.endWrite)
      expect(yield* Fiber.join(out)).toMatch(new RegExp(`vm\\.sock_\\d+\\n${EightMiB}\\n$`))
      expect(yield* exitCode(host, p.pid)).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

  it.live("stderr alone: a socket, with stdin and stdout still closed", () =>
    Effect.gen(function* () {
      const peers = yield* peersOf("2")
      const host = yield* hybridSetup
      const script = `s=; for fd in 0 1; do test -e /proc/self/fd/$fd || s="$s $fd:closed"; done; echo "$s" >&2; ${peers ?? "echo x.vm.sock_0"} >&2`
      const p = yield* host.exec(
        Null,
        { CommandArgs: ["sh", "-c", script], Environment: { PATH } },
        { stderr: true }
      )
      expect(yield* readText(Option.getOrThrow(p.stderr))).toMatch(/^ 0:closed 1:closed\n.*vm\.sock_\d+\n$/)
      expect(yield* exitCode(host, p.pid)).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

  it.live("a container process keeps the relay: its stdout is a pipe (a socketpair)", () =>
    Effect.gen(function* () {
      const peers = yield* peersOf("1")
      if (peers === undefined) return
      const host = yield* hybridSetup
      yield* host.create("c", { args: ["sh", "-c", peers], env: [`PATH=${PATH}`] })
      const init = yield* host.exec("c", {}, { stdout: true })
      expect(yield* readText(Option.getOrThrow(init.stdout))).toBe("unnamed\n")
    }).pipe(Effect.scoped, Effect.provide(layer))
  )
})

describe("a UVM process's stdio over the memory engine", () => {
  it.live("falls back to pipes and the relay (no descriptor to hand over)", () =>
    Effect.gen(function* () {
      const peers = yield* peersOf("0 1")
      if (peers === undefined) return
      const { host } = yield* setup()
      yield* host.negotiate()
      const p = yield* host.exec(
        Null,
        { CommandArgs: ["sh", "-c", `${peers}; cat`], Environment: { PATH } },
        { stdin: true, stdout: true }
      )
      yield* writeText(Option.getOrThrow(p.stdin), "relayed\n")
      expect(yield* readText(Option.getOrThrow(p.stdout))).toBe("unnamed\nunnamed\nrelayed\n")
      expect(yield* exitCode(host, p.pid)).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(Transport.layerMemory))
  )
})
