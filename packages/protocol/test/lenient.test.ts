import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import { Codec, Envelope, MessageType, Negotiate, Process, Properties } from "@gcs-bridge/protocol"

// The genuine guest→host frames (Linux GCS handlers), altered as a sloppier guest might write them; each
// must decode to what hcsshim's host gets from Go's encoding/json.
interface Vector {
  readonly name: string
  readonly direction: "host->guest" | "guest->host"
  readonly onWire: boolean
  readonly msgType: number
  readonly json: string
  readonly hostDecoded?: string
}

const vectors = (
  JSON.parse(
    readFileSync(new URL("./vectors/go-wire-vectors.json", import.meta.url), "utf8")
  ) as ReadonlyArray<Vector>
).filter(
  // Go rejects one of them (its ResultInfo is not JSON): nothing lenient about it.
  (v) => v.direction === "guest->host" && v.onWire && !v.hostDecoded?.startsWith("host decode error:")
)

const utf8 = (text: string) => new TextEncoder().encode(text)
type Json = { [key: string]: unknown }

const decode = (v: Vector, json: unknown) => {
  const payload = utf8(JSON.stringify(json))
  return v.msgType >>> 0 === MessageType.NotifyContainer
    ? Codec.decodeNotification(payload)
    : Codec.decodeResponse(MessageType.procName(MessageType.procOf(v.msgType))!, payload)
}
const decoded = (v: Vector, json: unknown) => Result.getOrThrow(decode(v, json)) as unknown as Json
const reasonOf = (result: Result.Result<unknown, { readonly reason: string }>) =>
  Result.isFailure(result) ? result.failure.reason : "no error"

// Every key of every object of the outer document, renamed (no Go map in these frames, and the documents
// carried in strings are read later by their own decoder).
const rekey = (value: unknown, rename: (key: string) => string): unknown =>
  Array.isArray(value)
    ? value.map((item) => rekey(item, rename))
    : typeof value === "object" && value !== null
      ? Object.fromEntries(Object.entries(value).map(([k, item]) => [rename(k), rekey(item, rename)]))
      : value

const casings: ReadonlyArray<readonly [string, (key: string) => string]> = [
  ["lower case", (k) => k.toLowerCase()],
  ["upper case", (k) => k.toUpperCase()],
  [
    "swapped case",
    (k) => [...k].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join("")
  ],
  // Unicode folds these two with K and S, and so does Go.
  ["Kelvin sign and long s", (k) => k.replace(/k/gi, "\u212a").replace(/s/gi, "\u017f")]
]

describe("decoding like the Go host: genuine guest frames, altered", () => {
  for (const v of vectors) {
    const raw = JSON.parse(v.json) as Json

    it(`matches keys ignoring case: ${v.name}`, () => {
      const base = decoded(v, raw)
      for (const [, rename] of casings) expect(decoded(v, rekey(raw, rename))).toEqual(base)
    })

    it(`reads an omitted or null field as zero and skips unknown ones: ${v.name}`, () => {
      const base = decoded(v, raw)
      // Go's zero value of each field, as an empty object decodes.
      const zero = decoded(v, {})
      for (const key of Object.keys(raw)) {
        const { [key]: _, ...rest } = raw
        const expected = { ...base, [key]: zero[key] }
        if (!(key in base)) delete expected[key]
        expect(decoded(v, rest)).toEqual(expected)
        expect(decoded(v, { ...raw, [key]: null })).toEqual(expected)
      }
      const extra = {
        ...raw,
        Future: { Nested: [1, null] },
        Result2: "x",
        ["Proce\u00dfId"]: "not ProcessId"
      }
      expect(decoded(v, extra)).toEqual(base)
    })
  }

  it("reads a response without Result as success", () => {
    const body = Result.getOrThrow(Codec.decodeResponse("WaitForProcess", utf8('{"ExitCode":3}')))
    expect([body.Result, body.ExitCode]).toEqual([0, 3])
    expect(Result.getOrThrow(Codec.decodeResponseBase(utf8('{"Result":null}'))).Result).toBe(0)
    // A `null` document leaves the whole Go struct zero.
    const empty = Result.getOrThrow(Codec.decodeResponse("ExecuteProcess", utf8("null")))
    expect([empty.Result, empty.ProcessId, empty.ErrorRecords]).toEqual([0, 0, []])
  })

  it("takes the last of two keys naming one field, as Go does", () => {
    const body = Result.getOrThrow(
      Codec.decodeResponse(
        "WaitForProcess",
        utf8('{"Result":0,"ExitCode":1,"exitcode":2,"result":-2147467259}')
      )
    )
    expect([body.Result, body.ExitCode]).toEqual([0x80004005, 2])
  })

  it("folds no other letter: a dotless i or sharp s names no field", () => {
    const body = Result.getOrThrow(
      Codec.decodeResponse("ExecuteProcess", utf8('{"Result":0,"Proce\u00dfId":1,"Proce\u017f\u017fId":2}'))
    )
    expect(body.ProcessId).toBe(2)
    const wait = Result.getOrThrow(Codec.decodeResponse("WaitForProcess", utf8('{"Ex\u0131tCode":3}')))
    expect(wait.ExitCode).toBe(0)
  })

  it("applies the rules inside nested structs, arrays and the capabilities", () => {
    const body = Result.getOrThrow(
      Codec.decodeResponse(
        "NegotiateProtocol",
        utf8(
          '{"result":0,"VERSION":4,"capabilities":{"runtimeostype":"Linux","supportedschemaversions":[{"major":2,"minor":1},null],' +
            '"GuestDefinedCapabilities":{"logforwardingsupported":true,"signalprocesssupported":null}}}'
        )
      )
    )
    expect(body.Version).toBe(4)
    expect(body.Capabilities.RuntimeOsType).toBe("Linux")
    expect(body.Capabilities.SupportedSchemaVersions).toEqual([
      new Negotiate.SchemaVersion({ Major: 2, Minor: 1 }),
      new Negotiate.SchemaVersion({})
    ])
    // A Windows-only flag under any casing picks the Windows shape.
    expect(body.Capabilities.GuestDefinedCapabilities).toEqual(
      new Negotiate.WindowsGuestDefinedCapabilities({ LogForwardingSupported: true })
    )
    const failed = Result.getOrThrow(
      Codec.decodeResponseBase(utf8('{"result":-1070137074,"errorrecords":[{"message":"m","LINE":7},null]}'))
    )
    expect(failed.ErrorRecords).toEqual([
      new Envelope.ErrorRecord({ Result: 0, Message: "m", Line: 7 }),
      new Envelope.ErrorRecord({})
    ])
  })

  it("reads the properties documents likewise", () => {
    const v2 = Result.getOrThrow(
      Codec.decodePropertiesV2({ processlist: [{ processid: 42, IMAGENAME: "sh" }, null], Statistics: null })
    )
    expect(v2.ProcessList).toEqual([
      new Properties.ProcessDetails({ ProcessId: 42, ImageName: "sh" }),
      new Properties.ProcessDetails({})
    ])
    expect(v2.Statistics).toBeUndefined()
    // A raw-JSON (`interface{}`) field keeps its `null`.
    const info = Codec.decodePropertiesV2({ guestconnectioninfo: { GuestDefinedCapabilities: null } })
    expect(Result.getOrThrow(info).GuestConnectionInfo?.GuestDefinedCapabilities).toBeNull()
    const disks = Codec.decodePropertiesV1({
      MappedVirtualDiskControllers: { "0": { mappedvirtualdisks: { "1": null } } }
    })
    expect(Result.getOrThrow(disks).MappedVirtualDiskControllers["0"]?.MappedVirtualDisks).toEqual({
      "1": new Properties.MappedVirtualDiskV1({})
    })
    const v1 = Result.getOrThrow(Codec.decodePropertiesV1({ id: "c", statistics: { memory: null } }))
    expect([v1.Id, v1.Statistics.Memory]).toEqual(["c", new Properties.MemoryStats({})])
    expect(Result.getOrThrow(Codec.decodePropertiesV1(null)).Id).toBe("")
  })

  it("keeps a notification's fields under any casing", () => {
    const note = Result.getOrThrow(
      Codec.decodeNotification(
        utf8(
          '{"ContainerID":"c","ActivityID":null,"type":"GracefulExit","Result":null,"resultinfo":"{\\"a\\":1}"}'
        )
      )
    )
    expect([note.ContainerId, note.Type, note.Result, note.ResultInfo]).toEqual([
      "c",
      "GracefulExit",
      0,
      { a: 1 }
    ])
  })
})

describe("decoding like the Go host: what Go rejects still fails, typed", () => {
  it("rejects a value of the wrong type under any casing of its key", () => {
    const bad = [
      '{"result":"0"}',
      '{"RESULT":2147483648}',
      '{"Result":0,"exitcode":-1}',
      '{"Result":0,"EXITCODE":"3"}',
      '{"Result":0,"ExitCode":1.5}',
      '{"Result":0,"activityid":"not-a-guid"}',
      '{"Result":0,"errorrecords":{}}',
      '{"Result":0,"ErrorRecords":[{"line":"7"}]}',
      "[]",
      '"Result"'
    ]
    for (const json of bad) {
      const result = Codec.decodeResponse("WaitForProcess", utf8(json))
      expect([json, reasonOf(result)]).toEqual([json, "InvalidBody"])
    }
    const error = Result.getFailure(Codec.decodeResponse("WaitForProcess", utf8('{"exitcode":-1}')))
    expect(error._tag === "Some" && error.value.message).toContain("ExitCode")
    expect(
      reasonOf(
        Codec.decodeResponse("NegotiateProtocol", utf8('{"capabilities":{"sendhostcreatemessage":1}}'))
      )
    ).toBe("InvalidBody")
    expect(reasonOf(Codec.decodeNotification(utf8('{"containerid":5}')))).toBe("InvalidBody")
    expect(reasonOf(Codec.decodeNotification(utf8('{"resultinfo":"not json"}')))).toBe("InvalidBody")
    expect(reasonOf(Codec.decodePropertiesV2({ processlist: [{ processid: "1" }] }))).toBe("InvalidBody")
  })

  it("still reads a Windows signal by its name only when it is a string", () => {
    const request = Codec.decodeRequest({
      type: 0x10100701,
      id: 1,
      payload: utf8(
        '{"ContainerId":"c","ActivityId":"00000000-0000-0000-0000-000000000000","ProcessId":1,"options":{"signal":"CtrlC"}}'
      )
    })
    const body = Result.getOrThrow(request).body as Process.ContainerSignalProcess
    expect(body.Options).toEqual(new Process.SignalProcessOptionsWindows({ Signal: "CtrlC" }))
  })
})
