/**
 * AF_VSOCK without a peer: there is no vsock loopback on a host, and CID 2 is
 * this machine's hypervisor, so these tests create, bind, listen, inspect and
 * time out an accept, and never connect anywhere.
 */
import { afterEach, describe, expect, it } from "vitest"
import { constants, encodeAddress, listen, supports } from "../lib/index.js"
import { closeAll, expectSystemError, settledHandles, thrown, track } from "./support.js"

afterEach(async () => {
  expect(await closeAll()).toBe(0)
})

const any = { family: "vsock", cid: constants.VMADDR_CID_ANY, port: constants.VMADDR_PORT_ANY } as const
const vsock = supports("vsock")

describe("AF_VSOCK", () => {
  it.skipIf(vsock)("a kernel without a vsock transport reports the family missing", () => {
    expect(supports("vsock")).toBe(false)
    expectSystemError(
      thrown(() => listen(any)),
      "EAFNOSUPPORT",
      "socket"
    )
  })

  it.skipIf(!vsock)("listens on CID any, and getsockname reports the port the kernel chose", () => {
    const listener = track(listen(any, 16))
    expect(listener.fd).toBeGreaterThanOrEqual(0)
    const address = listener.address()
    if (address.family !== "vsock") throw new Error(`expected a vsock address, got ${address.family}`)
    expect(address.cid).toBe(constants.VMADDR_CID_ANY)
    expect(Number.isInteger(address.port)).toBe(true)
    expect(address.port).not.toBe(constants.VMADDR_PORT_ANY)
    expect(address.port).toBeGreaterThan(0)
  })

  it.skipIf(!vsock)("times out an accept no connection ever reaches, then closes cleanly", async () => {
    const listener = track(listen(any))
    // Nothing can dial in (no vsock loopback): the accepting listener's callback never runs.
    const outcome = await Promise.race([
      new Promise<"accepted">((resolve) => listener.start(() => resolve("accepted"))),
      new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 200))
    ])
    expect(outcome).toBe("timeout")
    expect(listener.fd).toBeGreaterThanOrEqual(0)
    listener.close()
    expect(listener.fd).toBe(-1)
    expect(await settledHandles()).toBe(0)
  })

  it.skipIf(!vsock)(
    "refuses a port in use with EADDRINUSE, and frees it as soon as the listener closes",
    () => {
      const first = track(listen(any))
      const bound = first.address()
      if (bound.family !== "vsock") throw new Error("expected a vsock address")
      const same = { family: "vsock", cid: constants.VMADDR_CID_ANY, port: bound.port } as const
      expectSystemError(
        thrown(() => listen(same)),
        "EADDRINUSE",
        "bind"
      )
      first.close()
      const again = track(listen(same))
      expect(again.address()).toEqual(same)
    }
  )

  it("rejects CIDs and ports outside 32 bits with EINVAL", () => {
    for (const bad of [
      { family: "vsock", cid: -1, port: 1 },
      { family: "vsock", cid: 3, port: 2 ** 32 },
      { family: "vsock", cid: 3, port: 1.5 },
      { family: "vsock", cid: Number.NaN, port: 1 },
      { family: "vsock", cid: "3", port: 1 },
      { family: "vsock", port: 1 }
    ]) {
      const err = thrown(() => listen(bad as never))
      expectSystemError(err, "EINVAL", "listen")
      expect(err.message).toMatch(/cid|port/)
    }
  })

  it("encodes sockaddr_vm as the kernel lays it out (GCS-PROTOCOL §13.4)", () => {
    const bytes = encodeAddress({ family: "vsock", cid: 3, port: 0x40000000 })
    const expected = new Uint8Array(16)
    const view = new DataView(expected.buffer)
    view.setUint16(0, constants.AF_VSOCK, true)
    view.setUint32(4, 0x40000000, true)
    view.setUint32(8, 3, true)
    expect(Array.from(bytes)).toEqual(Array.from(expected))
  })
})
