import { describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Logger, References, Scope } from "effect"
import { expect } from "vitest"
import type { Address, PeerIdentity } from "../src/index.js"
import { HvsockAddress, HybridAddress, MemoryAddress, UnixAddress, VsockAddress } from "../src/index.js"
import { makeListener, peerRefusal } from "../src/internal/listener.js"
import { memoryPair } from "../src/internal/memory.js"
import { expire, transportFailure } from "./helpers.js"
import type { RawSocket } from "../src/internal/rawSocket.js"

const vm = "6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1"
const otherVm = "0a6bd3f4-1e1c-4f49-9a1c-2b3c4d5e6f70"

describe("peerRefusal", () => {
  it("vsock: only the address's CID, unless any", () => {
    const three = new VsockAddress({ cid: 3 })
    expect(peerRefusal(three, { family: "vsock", cid: 3 }, 1000)).toBeUndefined()
    expect(peerRefusal(three, { family: "vsock", cid: 4 }, 1000)).toContain("CID 4 is not 3")
    expect(peerRefusal(three, { family: "vsock" }, 1000)).toContain("unknown")
    expect(peerRefusal(new VsockAddress({ cid: "any" }), { family: "vsock", cid: 77 }, 1000)).toBeUndefined()
  })

  it("hvsock: only the address's VM id, in any case", () => {
    const address = new HvsockAddress({ vmId: vm })
    expect(peerRefusal(address, { family: "hvsock", vmId: vm.toUpperCase() }, undefined)).toBeUndefined()
    expect(peerRefusal(address, { family: "hvsock", vmId: otherVm }, undefined)).toContain(otherVm)
    expect(peerRefusal(address, { family: "hvsock" }, undefined)).toContain("unknown")
  })

  it("unix and hybrid: our uid or root", () => {
    for (const address of [
      new UnixAddress({ path: "/run/x" }),
      new HybridAddress({ path: "/run/x" })
    ] as Array<Address>) {
      expect(peerRefusal(address, { family: "unix", uid: 1000 }, 1000)).toBeUndefined()
      expect(peerRefusal(address, { family: "unix", uid: 0 }, 1000)).toBeUndefined()
      expect(peerRefusal(address, { family: "unix", uid: 1001 }, 1000)).toContain("uid 1001")
      expect(peerRefusal(address, { family: "unix" }, 1000)).toBeUndefined()
    }
  })
})

/** Resolves once `raw` reports the end of its stream. */
const ended = (raw: RawSocket) =>
  Effect.callback<boolean>((resume) => {
    raw.bind({
      data: () => {},
      end: () => resume(Effect.succeed(true)),
      error: () => resume(Effect.succeed(false)),
      drain: () => {}
    })
    raw.readStart()
  })

describe("the listener core", () => {
  it.effect("refuses an unexpected peer: logged, closed, never accepted", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const address = new VsockAddress({ cid: 3 })
      const run = Effect.gen(function* () {
        const scope = yield* Scope.make()
        const core = yield* makeListener({
          address,
          port: 0x40000001,
          target: { address: "vsock://3", port: 0x40000001 },
          verify: (peer: PeerIdentity) => peerRefusal(address, peer, undefined),
          maxPending: 4
        }).pipe(Scope.provide(scope))
        const [intruder, intruderListenerSide] = memoryPair()
        core.offer({ raw: intruderListenerSide, peer: { family: "vsock", cid: 4, port: 0x40000001 } })
        // Nothing was queued: the accept runs into its deadline.
        const waiting = yield* Effect.forkChild(Effect.scoped(core.listener.accept({ timeout: "1 second" })))
        yield* expire(waiting, "1 second")
        expect((yield* transportFailure(Fiber.join(waiting))).reason).toBe("AcceptTimeout")
        // The intruder saw its connection closed.
        expect(yield* ended(intruder)).toBe(true)
        // The expected VM gets through.
        const [, guestListenerSide] = memoryPair()
        core.offer({ raw: guestListenerSide, peer: { family: "vsock", cid: 3, port: 0x40000001 } })
        const accepted = yield* core.listener.accept()
        expect(accepted.peer).toEqual({ family: "vsock", cid: 3, port: 0x40000001 })
        yield* Scope.close(scope, Exit.void)
      })
      yield* run.pipe(
        Effect.provide(
          Logger.layer([
            Logger.make(({ message, fiber }) => {
              const annotations = fiber.getRef(References.CurrentLogAnnotations)
              logs.push(`${String(message)} ${JSON.stringify(annotations)}`)
            })
          ])
        )
      )
      // The log is written by a forked fiber; let it run.
      yield* Effect.yieldNow
      expect(logs.some((line) => line.includes("refused connection: vsock peer CID 4 is not 3"))).toBe(true)
      expect(logs.some((line) => line.includes("vsock cid 4"))).toBe(true)
    })
  )

  it.effect("connections waiting when the listener closes are closed, not leaked", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const core = yield* makeListener({
        address: new MemoryAddress({ name: "x" }),
        port: 1,
        target: { address: "memory://x", port: 1 },
        maxPending: 4
      }).pipe(Scope.provide(scope))
      const [client, server] = memoryPair()
      core.offer({ raw: server, peer: { family: "memory", port: 1 } })
      yield* Scope.close(scope, Exit.void)
      expect(yield* ended(client)).toBe(true)
      // Offers after close are closed at once as well.
      const [late, lateServer] = memoryPair()
      core.offer({ raw: lateServer, peer: { family: "memory", port: 1 } })
      expect(yield* ended(late)).toBe(true)
      expect((yield* transportFailure(Effect.scoped(core.listener.accept()))).reason).toBe("Closed")
    })
  )

  it.effect("a full accept queue pauses the engine and an accept resumes it", () =>
    Effect.gen(function* () {
      const events: Array<string> = []
      const core = yield* makeListener({
        address: new MemoryAddress({ name: "x" }),
        port: 1,
        target: { address: "memory://x", port: 1 },
        maxPending: 1,
        pauseSource: () => events.push("pause"),
        resumeSource: () => events.push("resume")
      })
      const [, server] = memoryPair()
      core.offer({ raw: server, peer: { family: "memory", port: 1 } })
      expect(events).toEqual(["pause"])
      yield* core.listener.accept()
      expect(events).toEqual(["pause", "resume"])
    })
  )
})
