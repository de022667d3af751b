import { describe, expect, it } from "@effect/vitest"
import { Container, Envelope, MessageType, Negotiate, Uvm } from "@gcs-bridge/protocol"
import { Transport } from "@gcs-bridge/transport"
import { Effect } from "effect"
import { Hr, Null, setup, standardSpec } from "./host.js"

// Genuine Linux GCS responses, from the Go wire vectors.
const vectors = {
  negotiate:
    '{"Result":0,"ActivityId":"00000000-0000-0000-0000-000000000000","Version":4,"Capabilities":{"SupportedSchemaVersions":[{"Major":2,"Minor":1}],"RuntimeOsType":"Linux","GuestDefinedCapabilities":{"NamespaceAddRequestSupported":true,"SignalProcessSupported":true,"DumpStacksSupported":true,"DeleteContainerStateSupported":true}}}',
  unsupportedVersion:
    '{"Result":-1070137076,"ActivityId":"00000000-0000-0000-0000-000000000000","ErrorMessage":"HRESULT: 0xc037010c","ErrorRecords":[{"Result":-1070137076,"Message":"HRESULT: 0xc037010c","ModuleName":"gcs","FileName":"","Line":4294967295}]}',
  notNegotiated: "HRESULT 0x80004001: bridge: function not supported, header type: ComputeSystemDumpStacksV1",
  secondNegotiate:
    "HRESULT 0x80004001: bridge: function not supported, header type: ComputeSystemNegotiateProtocolV1",
  updateContainer: "HRESULT 0x80004001: bridge: function not supported, header type: 269487617",
  uvmCreate: "HRESULT 0xc037010d: invalid schema version: {0 0}"
}

const uvm = (_name: "DumpStacks" | "Start") => new Envelope.RequestBase({ ContainerId: Null })

describe("negotiation", () => {
  it.effect("answers v4 with the Linux capabilities, byte for byte", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      const reply = yield* host.negotiate()
      expect(reply.frame.type).toBe(MessageType.responseType(MessageType.Proc.NegotiateProtocol))
      expect(reply.frame.id).toBe(0)
      expect(reply.json).toBe(vectors.negotiate)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("refuses every request before negotiation with E_NOTIMPL", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      const early = yield* host.call("DumpStacks", uvm("DumpStacks"))
      expect(early.result).toBe(Hr.NotImplemented)
      expect(early.message).toBe(vectors.notNegotiated)
      expect(early.base.ErrorRecords).toHaveLength(1)
      expect(early.base.ErrorRecords[0]!.ModuleName).toBe("gcs")
      expect(early.base.ErrorRecords[0]!.Line).toBe(4294967295)
      // Still un-negotiated: negotiation then works, and the request is served.
      expect((yield* host.negotiate()).result).toBe(0)
      const stacks = yield* host.ok("DumpStacks", uvm("DumpStacks"))
      expect(stacks.GuestStacks).toContain("gcs-bridge guest")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("refuses a range without 4 with 0xC037010C, byte for byte", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      const refused = yield* host.call(
        "NegotiateProtocol",
        new Negotiate.NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 5, MaximumVersion: 9 })
      )
      expect(refused.json).toBe(vectors.unsupportedVersion)
      const tooOld = yield* host.call(
        "NegotiateProtocol",
        new Negotiate.NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 1, MaximumVersion: 3 })
      )
      expect(tooOld.result).toBe(Hr.UnsupportedProtocolVersion)
      // A refused negotiation leaves the connection un-negotiated.
      expect((yield* host.call("Start", uvm("Start"))).result).toBe(Hr.NotImplemented)
      expect((yield* host.negotiate()).result).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("answers a second NegotiateProtocol with E_NOTIMPL", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const again = yield* host.negotiate()
      expect(again.result).toBe(Hr.NotImplemented)
      expect(again.message).toBe(vectors.secondNegotiate)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})

describe("requests the Linux GCS does not serve", () => {
  it.effect(
    "UpdateContainer, LifecycleNotification, ModifyServiceSettings and unknown types get E_NOTIMPL",
    () =>
      Effect.gen(function* () {
        const { host } = yield* setup()
        yield* host.negotiate()
        const update = yield* host.call(
          "UpdateContainer",
          new Container.UpdateContainerRequest({ ContainerId: "c1" })
        )
        expect(update.message).toBe(vectors.updateContainer)
        expect(update.frame.type).toBe(MessageType.responseType(MessageType.Proc.UpdateContainer))
        const lifecycle = yield* host.call(
          "LifecycleNotification",
          new Envelope.RequestBase({ ContainerId: Null })
        )
        expect(lifecycle.message).toBe(
          `HRESULT 0x80004001: bridge: function not supported, header type: ${MessageType.requestType(MessageType.Proc.LifecycleNotification)}`
        )
        const unknownType = 0x10100f02
        const id = yield* host.sendRaw(unknownType, `{"ContainerId":"${Null}","ActivityId":"${Null}"}`)
        const unknown = host.reply("Start", yield* host.response(id))
        expect(unknown.frame.type).toBe(0x20100f02)
        expect(unknown.result).toBe(Hr.NotImplemented)
        expect(unknown.message).toBe(
          `HRESULT 0x80004001: bridge: function not supported, header type: ${unknownType}`
        )
        // A response-class frame from the host is answered, like the Linux GCS's mux does.
        const strange = yield* host.sendRaw(0x20100201, `{"Result":0}`)
        expect(host.reply("Start", yield* host.response(strange)).message).toBe(
          "HRESULT 0x80004001: bridge: function not supported, header type: ComputeSystemResponseStartV1"
        )
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("invalid JSON gets 0xC037010D and the connection goes on", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const id = yield* host.sendRaw(MessageType.requestType(MessageType.Proc.Start), "{not json")
      const bad = host.reply("Start", yield* host.response(id))
      expect(bad.result).toBe(Hr.InvalidJson)
      expect(bad.message).toContain("HRESULT 0xc037010d")
      // A field of the wrong type is invalid JSON for the Go decoder too.
      const typed = yield* host.sendRaw(
        MessageType.requestType(MessageType.Proc.WaitForProcess),
        `{"ContainerId":"${Null}","ProcessId":"seven"}`
      )
      expect(host.reply("WaitForProcess", yield* host.response(typed)).result).toBe(Hr.InvalidJson)
      // Start of the UVM itself is the Linux GCS's no-op success (the genuine vector answers 0).
      expect((yield* host.call("Start", uvm("Start"))).json).toBe(
        '{"Result":0,"ActivityId":"00000000-0000-0000-0000-000000000000"}'
      )
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a Create with the UVM config document fails on its schema version like the Linux GCS", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const reply = yield* host.call(
        "Create",
        new Container.ContainerCreate({
          ContainerId: Null,
          ContainerConfig: new Uvm.UvmConfig({ SystemType: "Container", TimeZoneInformation: null })
        })
      )
      expect(reply.result).toBe(Hr.InvalidJson)
      expect(reply.message).toBe(vectors.uvmCreate)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("serves many pipelined requests, and keeps DumpStacks under the 64 KiB frame limit", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const count = 300
      const ids = yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => i),
        (i) =>
          host.send(
            "Create",
            new Container.ContainerCreate({
              ContainerId: `pipelined-${i}-${"x".repeat(200)}`,
              ContainerConfig: new Container.LinuxHostedSystem({
                SchemaVersion: new Negotiate.SchemaVersion({ Major: 2, Minor: 1 }),
                OciBundlePath: "",
                OciSpecification: standardSpec("pipelined", { args: ["true"] }),
                ScratchDirPath: ""
              })
            })
          )
      )
      const results = yield* Effect.forEach(ids, (id) =>
        Effect.map(host.response(id), (frame) => host.reply("Create", frame).result)
      )
      expect(results.every((r) => r === 0)).toBe(true)
      const stacks = (yield* host.ok("DumpStacks", uvm("DumpStacks"))).GuestStacks
      expect(stacks).toContain(`containers: ${count}`)
      expect(stacks).toMatch(/truncated to stay under the 64 KiB frame limit\)\n$/)
      expect(Buffer.byteLength(JSON.stringify(stacks))).toBeLessThan(0x10000 - 200)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("DumpStacks reports the guest's state as text", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const reply = yield* host.ok("DumpStacks", uvm("DumpStacks"))
      expect(reply.GuestStacks).toMatch(/negotiated v4/)
      expect(reply.GuestStacks).toMatch(/requests in flight: 1/)
      expect(reply.GuestStacks).toMatch(/containers: 0/)
      expect(reply.GuestStacks).toMatch(/node handles:/)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
