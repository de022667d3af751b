import { Container } from "@gcs-bridge/protocol"
import { GuestConnection } from "@gcs-bridge/runtime"
import { Effect, Stream } from "effect"

/**
 * Runs `argv` as the init process of a new container, logs its stdout line by
 * line as it arrives, and gives its exit code. Everything it creates belongs
 * to the scope: when the scope closes, a container still running is
 * terminated and its process killed, even on failure or interruption.
 */
export const runInContainer = (id: string, argv: ReadonlyArray<string>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const guest = yield* GuestConnection
      const container = yield* guest.createContainer(
        id,
        new Container.LinuxHostedSystem({
          OciBundlePath: `/run/gcs/c/${id}`,
          OciSpecification: {
            ociVersion: "1.1.0",
            process: { args: [...argv], cwd: "/", env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] },
            root: { path: `/run/gcs/c/${id}/rootfs` },
            // The Linux GCS needs `linux`: the namespaces hcsshim gives a container, and a /proc.
            linux: { namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }] },
            mounts: [{ destination: "/proc", type: "proc", source: "proc" }]
          }
        })
      )
      yield* container.start
      // No OciProcess: this exec starts the container's init process (the spec's `process`).
      const init = yield* container.exec({ CreateStdOutPipe: true })
      yield* init.stdout.pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.runForEach((line) => Effect.log(`${id}: ${line}`))
      )
      return yield* init.wait
    })
  )
