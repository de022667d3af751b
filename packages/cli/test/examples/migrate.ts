import { Container } from "@gcs-bridge/protocol"
import { GuestConnection, MigrationState } from "@gcs-bridge/runtime"
import type { Address } from "@gcs-bridge/transport"
import { Effect, Schema, Stream } from "effect"

const shell = (script: string) =>
  new Container.LinuxHostedSystem({
    OciSpecification: {
      ociVersion: "1.1.0",
      process: { args: ["sh", "-c", script], cwd: "/", env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] },
      root: { path: "/run/gcs/c/moving/rootfs" },
      linux: { namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }] }
    }
  })

/**
 * Host A starts a container whose init prints a line, waits for the file `go`, prints another and exits 7, and
 * a process in the utility VM that exits 3 once `go` exists. It reads the first line, then gives the state
 * another host process needs. Host A then ends without closing its scope — closing it would stop what it
 * started — as a host process replaced by a live migration does.
 */
export const startAndSave = (address: Address, go: string) =>
  Effect.gen(function* () {
    const guest = yield* GuestConnection.make({ address })
    const wait = `while [ ! -e ${go} ]; do sleep 0.05; done`
    const container = yield* guest.createContainer(
      "moving",
      shell(`echo before; ${wait}; echo after; exit 7`)
    )
    yield* container.start
    const init = yield* container.exec({ CreateStdOutPipe: true })
    yield* guest.exec({ CommandLine: `sh -c '${wait}; exit 3'` })
    const first = yield* init.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.take(1),
      Stream.mkString
    )
    yield* Effect.log(`host A read: ${first}`)
    return Schema.encodeSync(MigrationState.json)(yield* guest.migrationState)
  })

/**
 * Host B takes the guest over from the saved state: the guest re-dials it, and each process it restores gives
 * the rest of its output (a stream the guest re-dials replays its last 128 KiB first) and its exit code.
 */
export const takeOver = (address: Address, saved: string) =>
  Effect.gen(function* () {
    const state = yield* Schema.decodeUnknownEffect(MigrationState.json)(saved)
    const guest = yield* GuestConnection.make({ address, resume: state })
    return yield* Effect.forEach(
      state.processes,
      (process) =>
        Effect.gen(function* () {
          // Owning the container again: its exit is ours to hear, and closing the scope stops it.
          if (process.containerId !== "00000000-0000-0000-0000-000000000000")
            yield* guest.openContainer(process.containerId)
          const restored = yield* guest.restoreProcess(process)
          yield* Effect.log(`restored process ${process.pid}`)
          const [output, code] = yield* Effect.all(
            [restored.stdout.pipe(Stream.decodeText(), Stream.mkString), restored.wait],
            { concurrency: 2 }
          )
          return { pid: process.pid, output, code }
        }),
      { concurrency: "unbounded" }
    )
  })
