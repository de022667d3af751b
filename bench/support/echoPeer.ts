/**
 * The raw echo peer (a peer process): dials a Unix socket and writes back
 * every byte it reads, through `net`'s own backpressure. The reference for
 * the RPC figures: a frame round trip with no protocol work at either end.
 *
 * Argument: JSON `{ path }`. Exits 0 when the host closes the connection.
 */
import * as net from "node:net"

const { path } = JSON.parse(process.argv[2] ?? "{}") as { readonly path: string }
const socket = net.createConnection(path)
socket.setNoDelay?.(true)
socket.pipe(socket)
socket.on("close", () => process.exit(0))
socket.on("error", (error) => {
  console.error(`echo peer: ${error.message}`)
  process.exit(1)
})
