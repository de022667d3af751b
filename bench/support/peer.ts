/**
 * The peer processes of the benchmarks and the soak, one entry:
 * `node peer.js '<PeerConfig as JSON>'` (started by `startPeer`).
 *
 * - `echo`: dials `path` and writes back every byte it reads — the reference
 *   under every RPC figure, a frame round trip with no protocol work.
 * - `stream`: listens on `path` and prints `ready`; per connection one command
 *   line: `source N` gives the socket itself as fd 1 to `dd if=/dev/zero bs=64K`
 *   writing N bytes, `sink` as fds 0 and 1 to `sh -c 'echo go; exec wc -c'`
 *   (the host sends once it reads `go`, and gets the count back), `quit`
 *   exits. The same programs our guest hands the stdio sockets to, so the raw
 *   reference and the relays have the same peer, at socket speed, and no byte
 *   passes through JavaScript at this end.
 * - `responder`: dials each of `paths` like a guest and answers every request
 *   with a canned success chosen by the type word alone, no JSON parsed, so a
 *   benchmark against it measures the host's own cost: NegotiateProtocol gets
 *   the Linux GCS's genuine answer, ExecuteProcess a fresh fake pid,
 *   WaitForProcess exit code 0 at once or never (`holdWaits`: the fake process
 *   stays "running"). Exits once every connection has ended.
 * - `guest`: our guest (what `gcsctl guest --connect unix://PATH --once` does)
 *   serving one connection on `path` over `engine`; SIGTERM stops it cleanly.
 *   `maxInFlight` is raised from 1024: every live process holds a
 *   WaitForProcess in flight, and the scale benchmark keeps 10,000 alive.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import { ChunkSize, FrameScanner, frame, NullContainerId, Proc, ResponseBit, type RawFrame } from "./wire.js"

/** What a peer is told to be. */
export type PeerConfig =
  | { readonly kind: "echo"; readonly path: string }
  | { readonly kind: "stream"; readonly path: string }
  | { readonly kind: "responder"; readonly paths: ReadonlyArray<string>; readonly holdWaits: boolean }
  | { readonly kind: "guest"; readonly path: string; readonly engine: "native" | "node" }

const fail = (message: string): never => {
  console.error(message)
  process.exit(1)
}

/** Dials `path`, retrying while the host is not listening yet. */
const dial = (path: string, serve: (socket: net.Socket) => void, deadline = Date.now() + 60_000): void => {
  const socket = net.createConnection(path)
  socket.once("connect", () => {
    socket.removeAllListeners("error")
    socket.setNoDelay(true)
    socket.on("error", () => socket.destroy())
    serve(socket)
  })
  socket.once("error", (error: NodeJS.ErrnoException) => {
    if ((error.code === "ENOENT" || error.code === "ECONNREFUSED") && Date.now() < deadline)
      return void setTimeout(() => dial(path, serve, deadline), 2)
    fail(`peer: cannot dial ${path}: ${error.message}`)
  })
}

const echo = (path: string) =>
  dial(path, (socket) => {
    socket.pipe(socket)
    socket.on("close", () => process.exit(0))
  })

const stream = (path: string) =>
  net
    .createServer((socket) => {
      socket.on("error", () => socket.destroy())
      let head = Buffer.alloc(0)
      const onCommand = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk])
        const nl = head.indexOf(10)
        if (nl < 0) return
        socket.off("data", onCommand)
        socket.pause()
        const [verb, arg] = head.subarray(0, nl).toString("latin1").split(" ")
        const bytes = Number(arg)
        if (verb === "quit") process.exit(0)
        // The host sends nothing more before the program owns the socket (it waits for "go").
        const known =
          verb === "sink" ? arg === undefined : verb === "source" && bytes > 0 && bytes % ChunkSize === 0
        if (head.length !== nl + 1 || !known)
          return fail(`stream peer: bad command '${head.toString("latin1")}'`)
        const [file, ...args] =
          verb === "source"
            ? ["dd", "if=/dev/zero", `bs=${ChunkSize}`, `count=${bytes / ChunkSize}`, "status=none"]
            : ["sh", "-c", "echo go; exec wc -c"]
        const child = spawn(file!, args, { stdio: [verb === "sink" ? socket : "ignore", socket, "inherit"] })
        child.once("exit", (code) => code === 0 || fail(`stream peer: ${file} exited with ${code}`))
        // The child holds its own copy: closing ours (not shutting it down) leaves the end-of-file to it.
        socket.destroy()
      }
      socket.on("data", onCommand)
    })
    .listen(path, () => console.log("ready"))

const answer = (body: string) => Buffer.from(`{"Result":0,"ActivityId":"${NullContainerId}"${body}}`)
const negotiated = answer(
  `,"Version":4,"Capabilities":{"SupportedSchemaVersions":[{"Major":2,"Minor":1}],"RuntimeOsType":"Linux",` +
    `"GuestDefinedCapabilities":{"NamespaceAddRequestSupported":true,"SignalProcessSupported":true,` +
    `"DumpStacksSupported":true,"DeleteContainerStateSupported":true}}`
)
const success = answer("")
const exited = answer(`,"ExitCode":0`)

const responder = (paths: ReadonlyArray<string>, holdWaits: boolean) => {
  let nextPid = 1000
  let open = paths.length
  for (const path of paths) {
    dial(path, (socket) => {
      let out: Array<Buffer> = []
      const reply = (request: RawFrame) => {
        const proc = request.type & 0x0fffffff
        if (proc === Proc.Wait && holdWaits) return
        const payload =
          proc === Proc.Negotiate
            ? negotiated
            : proc === Proc.Execute
              ? answer(`,"ProcessId":${nextPid++}`)
              : proc === Proc.Wait
                ? exited
                : success
        out.push(frame(request.type + ResponseBit, request.id, payload))
      }
      const scanner = new FrameScanner(reply)
      socket.on("data", (chunk: Buffer) => {
        scanner.push(chunk)
        if (out.length === 0) return
        // Everything answerable in this chunk goes out in one write.
        socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
        out = []
      })
      socket.on("end", () => socket.end())
      socket.on("close", () => {
        if (--open === 0) process.exit(0)
      })
    })
  }
}

// Loaded only here, so that the other peers start without the whole stack.
const guest = async (path: string, engine: "native" | "node") => {
  const [{ Guest }, { Transport, UnixAddress }, { Cause, Effect, Exit, Fiber, References }] =
    await Promise.all([import("@gcs-bridge/guest"), import("@gcs-bridge/transport"), import("effect")])
  const fiber = Effect.runFork(
    Guest.run({
      address: new UnixAddress({ path }),
      once: true,
      connectTimeout: "60 seconds",
      retryInterval: "5 millis",
      maxInFlight: 65_536,
      console: "none"
    }).pipe(
      Effect.provide(engine === "node" ? Transport.layerNode : Transport.layer),
      Effect.provideService(References.MinimumLogLevel, "Warn")
    )
  )
  process.once("SIGTERM", () => Effect.runFork(Fiber.interrupt(fiber)))
  const exit = await Effect.runPromise(Fiber.await(fiber))
  if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause))
    fail(`guest peer: ${Cause.pretty(exit.cause)}`)
  process.exit(Exit.isSuccess(exit) ? 0 : 143)
}

// The host holds the other end of stdin: at its end the peer stops as on SIGTERM (our guest kills its processes).
process.stdin.once("end", () => process.kill(process.pid, "SIGTERM"))
process.stdin.resume()

const config = JSON.parse(process.argv[2] ?? "{}") as PeerConfig
if (config.kind === "echo") echo(config.path)
else if (config.kind === "stream") stream(config.path)
else if (config.kind === "responder") responder(config.paths, config.holdWaits)
else void guest(config.path, config.engine)
