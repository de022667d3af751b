import { describe, expect, it } from "@effect/vitest"
import { splitShellWords } from "../src/internal/shellWords.js"

describe("CommandLine splitting", () => {
  const words: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["ls -l", ["ls", "-l"]],
    ["  spaced\targs\n", ["spaced", "args"]],
    ["/bin/bash -l", ["/bin/bash", "-l"]],
    [`echo 'single $HOME "x"'`, ["echo", 'single $HOME "x"']],
    [`echo "double \\"q\\" \\$x \\a"`, ["echo", 'double "q" $x \\a']],
    ["echo a\\ b c\\\\d", ["echo", "a b", "c\\d"]],
    ["x''y \"\" ''", ["xy", "", ""]],
    ["a\\\nb", ["ab"]],
    ["no $expansion `here` * ?", ["no", "$expansion", "`here`", "*", "?"]],
    ["", []]
  ]
  for (const [line, expected] of words) {
    it(`splits ${JSON.stringify(line)}`, () => {
      expect(splitShellWords(line)).toEqual({ words: expected })
    })
  }

  const errors: ReadonlyArray<readonly [string, string]> = [
    ["echo 'open", "unterminated single quote"],
    ['echo "open', "unterminated double quote"],
    ["echo \\", "lone backslash"],
    ["a | b", "shell operator"],
    ["a && b", "shell operator"],
    ["a > f", "shell operator"],
    ["(a)", "shell operator"],
    ["a;b", "shell operator"]
  ]
  for (const [line, why] of errors) {
    it(`refuses ${JSON.stringify(line)}`, () => {
      const result = splitShellWords(line)
      expect("error" in result && result.error).toContain(why)
    })
  }
})
