/**
 * Kernel pieces that need no running kernel: message signing, history
 * queries, is_complete decisions, cursor conversion.
 */
import { createHmac } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WireCodec, parseConnectionInfo } from "../kernel/protocol/wire.js";
import { History } from "../kernel/history.js";
import { sqliteGlob } from "../kernel/glob.js";
import { isComplete } from "../kernel/compiler/is-complete.js";
import { toCodePoints, toUtf16 } from "../kernel/protocol/cursor.js";

describe("wire protocol signing", () => {
  const codec = new WireCodec("secret-key");
  const frames = () => codec.encode("execute_request", { code: "1+1" }, undefined, [Buffer.from("client-id")]).map((f) => Buffer.from(f));

  it("signs the four JSON frames with HMAC-SHA256 of the key", () => {
    const f = frames();
    const at = f.findIndex((b) => b.toString() === "<IDS|MSG>");
    const expected = createHmac("sha256", "secret-key").update(Buffer.concat(f.slice(at + 2, at + 6))).digest("hex");
    expect(f[at + 1]!.toString()).toBe(expected);
    const msg = codec.decode(f);
    expect(msg.header.msg_type).toBe("execute_request");
    expect(msg.content).toEqual({ code: "1+1" });
    expect(msg.identities.map((b) => b.toString())).toEqual(["client-id"]);
  });

  it("rejects a message signed with another key, or altered after signing", () => {
    const other = new WireCodec("other-key").encode("execute_request", { code: "evil()" }, undefined).map((f) => Buffer.from(f));
    expect(() => codec.decode(other)).toThrow(/invalid HMAC signature/);
    const f = frames();
    const at = f.findIndex((b) => b.toString() === "<IDS|MSG>");
    f[at + 5] = Buffer.from(JSON.stringify({ code: "evil()" }));
    expect(() => codec.decode(f)).toThrow(/invalid HMAC signature/);
    expect(() => codec.decode([Buffer.from("no delimiter")])).toThrow(/malformed/);
  });

  it("encodes typed arrays and bigints in content as plain JSON", () => {
    const f = codec.encode("display_data", { data: { y: new Float32Array([1.5, 2]), n: 10n } }, undefined).map(String);
    expect(JSON.parse(f[5]!)).toEqual({ data: { y: [1.5, 2], n: "10" } });
  });

  it("names the field of a bad connection file", () => {
    expect(() => parseConnectionInfo(JSON.stringify({ shell_port: 0 }), "conn.json")).toThrow(/conn\.json: field "shell_port"/);
    expect(() => parseConnectionInfo("{", "conn.json")).toThrow(/conn\.json: not JSON/);
  });
});

describe("history", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-ts-history-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("persists sessions and answers tail, range, search (glob, unique, n) and output=true", () => {
    const first = new History(dir);
    first.append(1, "const a = 1", null);
    first.append(2, "a + 1", "2");
    const second = new History(dir);
    expect(second.session).toBe(first.session + 1);
    second.append(1, "a + 1", "2");
    second.append(2, "a * 10", "10");
    expect(second.query({ hist_access_type: "tail", n: 3 })).toEqual([
      [first.session, 2, "a + 1"],
      [second.session, 1, "a + 1"],
      [second.session, 2, "a * 10"],
    ]);
    expect(second.query({ hist_access_type: "range", session: -1, start: 1, stop: 2, output: true })).toEqual([[first.session, 1, ["const a = 1", null]]]);
    expect(second.query({ hist_access_type: "range", session: 0, start: 2, stop: 3 })).toEqual([[second.session, 2, "a * 10"]]);
    expect(second.query({ hist_access_type: "search", pattern: "a ?*" })).toHaveLength(3);
    expect(second.query({ hist_access_type: "search", pattern: "a + ?", unique: true })).toEqual([[second.session, 1, "a + 1"]]);
    expect(second.query({ hist_access_type: "search", pattern: "*", n: 2 })).toHaveLength(2);
    // A torn last line (crash mid-write) is skipped, the rest still read.
    fs.appendFileSync(path.join(dir, `${first.session}.jsonl`), '{"line": 3, "inp');
    expect(new History(dir).query({ hist_access_type: "range", session: first.session, start: 1 })).toHaveLength(2);
  });

  it("globs like IPython (SQLite GLOB, anchored; the full table is in kernel-history.test.ts)", () => {
    expect(sqliteGlob("a*", "abc")).toBe(true);
    expect(sqliteGlob("a*", "ba")).toBe(false);
    expect(sqliteGlob("x.y?", "x.yz")).toBe(true);
    expect(sqliteGlob("x.y?", "xzyz")).toBe(false);
  });
});

describe("is_complete", () => {
  it.each([
    ["const x = 1", "complete"],
    ["function f() {", "incomplete"],
    ["const s = `open", "incomplete"],
    ["/* open comment", "incomplete"],
    ["f(1,", "incomplete"],
    ["const = 5", "invalid"],
    ["1 +* 2", "invalid"],
    ["'unterminated", "invalid"],
  ])("%j is %s", (code, status) => {
    expect(isComplete(code).status).toBe(status);
  });
  it("suggests the next line's indent", () => {
    expect(isComplete("if (x) {\n  for (;;) {")).toEqual({ status: "incomplete", indent: "    " });
  });
});

describe("cursor positions (code points ↔ UTF-16)", () => {
  it("round-trips past astral characters", () => {
    const s = "a😀b😀c";
    expect(toUtf16(s, 2)).toBe(3);
    expect(toCodePoints(s, 3)).toBe(2);
    expect(toUtf16(s, 99)).toBe(s.length);
    for (let cp = 0; cp <= 5; cp++) expect(toCodePoints(s, toUtf16(s, cp))).toBe(cp);
  });
});
