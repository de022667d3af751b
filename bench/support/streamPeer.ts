/**
 * The raw stream peer (a peer process), reference for the stdio relays. It
 * listens on a Unix socket; on each connection it reads one command line:
 *
 * - `source N`: writes N bytes of zeros in 64 KiB writes (honouring `drain`),
 *   then half-closes — what `dd` feeding a stdout relay does;
 * - `sink`: reads to end-of-file, then answers the byte count as a decimal
 *   line — what `wc -c` behind a stdin relay does;
 * - `quit`: exits 0.
 *
 * Argument: JSON `{ path }`. Prints `ready` once listening.
 */
import * as net from "node:net"

const { path } = JSON.parse(process.argv[2] ?? "{}") as { readonly path: string }
const ChunkSize = 64 * 1024
const block = Buffer.alloc(ChunkSize)

const source = (socket: net.Socket, bytes: number): void => {
  let sent = 0
  const pump = () => {
    while (sent < bytes) {
      const size = Math.min(ChunkSize, bytes - sent)
      sent += size
      if (!socket.write(size === ChunkSize ? block : block.subarray(0, size)))
        return void socket.once("drain", pump)
    }
    socket.end()
  }
  pump()
}

const sink = (socket: net.Socket, already: number): void => {
  let received = already
  socket.on("data", (chunk: Buffer) => {
    received += chunk.length
  })
  socket.on("end", () => socket.end(`${received}\n`))
}

const server = net.createServer((socket) => {
  socket.on("error", () => socket.destroy())
  let head = Buffer.alloc(0)
  const onCommand = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk])
    const nl = head.indexOf(10)
    if (nl < 0) return
    socket.off("data", onCommand)
    const [verb, arg] = head.subarray(0, nl).toString("latin1").split(" ")
    const rest = head.length - nl - 1
    if (verb === "source") source(socket, Number(arg))
    else if (verb === "sink") sink(socket, rest)
    else if (verb === "quit") process.exit(0)
    else socket.destroy()
  }
  socket.on("data", onCommand)
})
server.listen(path, () => console.log("ready"))
