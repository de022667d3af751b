/**
 * Which peers a listener accepts. The guest is not trusted (DESIGN.md): a
 * listener for one VM must not hand over a connection from another VM, nor,
 * on a Unix socket, from another local user.
 */
import type { Address } from "../Address.js"
import type { PeerIdentity } from "../Connection.js"

/** This process's uid, where the platform has uids. */
export const ourUid = (): number | undefined =>
  typeof process.getuid === "function" ? process.getuid() : undefined

/**
 * Why `peer` must be refused by a listener on `address`, or undefined.
 * `uid` is the uid a Unix peer must have (root is always allowed); a peer
 * whose uid the engine could not tell is left to the socket file's mode.
 */
export const peerRefusal = (
  address: Address,
  peer: PeerIdentity,
  uid: number | undefined
): string | undefined => {
  switch (address._tag) {
    case "VsockAddress":
      if (address.cid === "any") return undefined
      return peer.cid === address.cid
        ? undefined
        : `vsock peer CID ${peer.cid ?? "unknown"} is not ${address.cid}`
    case "HvsockAddress":
      return peer.vmId !== undefined && peer.vmId.toLowerCase() === address.vmId
        ? undefined
        : `Hyper-V peer VM ${peer.vmId ?? "unknown"} is not ${address.vmId}`
    case "UnixAddress":
    case "HybridAddress":
      if (peer.uid === undefined || uid === undefined || peer.uid === uid || peer.uid === 0) return undefined
      return `Unix peer uid ${peer.uid} is neither ${uid} nor root`
    case "MemoryAddress":
      return undefined
  }
}
