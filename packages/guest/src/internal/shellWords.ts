/**
 * POSIX shell-word splitting of a `CommandLine` (what the Linux GCS does when
 * `CommandArgs` is empty), without a shell: quotes and backslashes are
 * honoured, nothing is expanded, and shell operators are refused rather than
 * silently cut off, because the result is used as an argv directly.
 */

const operators = new Set(["|", "&", ";", "<", ">", "(", ")"])
const blanks = new Set([" ", "\t", "\n"])
// Inside double quotes a backslash only escapes these (POSIX 2.2.3).
const doubleQuoteEscapes = new Set(["$", "`", '"', "\\", "\n"])

/** The words of `line`, or a sentence saying why it cannot be split. */
export const splitShellWords = (
  line: string
): { readonly words: ReadonlyArray<string> } | { readonly error: string } => {
  const words: Array<string> = []
  let word = ""
  // A word exists once any character or quote pair was seen: `''` is an empty word.
  let inWord = false
  let i = 0
  while (i < line.length) {
    const c = line[i]!
    if (blanks.has(c)) {
      if (inWord) words.push(word)
      word = ""
      inWord = false
      i++
    } else if (c === "\\") {
      if (i + 1 >= line.length) return { error: "the command line ends with a lone backslash" }
      const next = line[i + 1]!
      // Backslash-newline is a line continuation and produces nothing.
      if (next !== "\n") {
        word += next
        inWord = true
      }
      i += 2
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1)
      if (end < 0) return { error: "unterminated single quote" }
      word += line.slice(i + 1, end)
      inWord = true
      i = end + 1
    } else if (c === '"') {
      i++
      let closed = false
      while (i < line.length) {
        const d = line[i]!
        if (d === '"') {
          closed = true
          i++
          break
        }
        if (d === "\\" && i + 1 < line.length && doubleQuoteEscapes.has(line[i + 1]!)) {
          if (line[i + 1] !== "\n") word += line[i + 1]
          i += 2
        } else {
          word += d
          i++
        }
      }
      if (!closed) return { error: "unterminated double quote" }
      inWord = true
    } else if (operators.has(c)) {
      return {
        error: `shell operator ${JSON.stringify(c)} at offset ${i} (no shell runs here; quote it or use CommandArgs)`
      }
    } else {
      word += c
      inWord = true
      i++
    }
  }
  if (inWord) words.push(word)
  return { words }
}
