/**
 * Text from the guest made safe for a terminal. A guest's error message,
 * container id or stack dump could otherwise carry escape sequences
 * (`ESC ] 0;title BEL` retitles the window, `ESC [2K` erases the line, C1
 * `CSI` does the same in one byte) that the user's terminal would obey.
 */

/** C0 controls, DEL and the C1 controls U+0080–U+009F: matching them is the point. */
// eslint-disable-next-line no-control-regex
const controls = /[\u0000-\u001f\u007f-\u009f]/g

const escapeOne = (char: string): string => {
  const code = char.charCodeAt(0)
  // C0 as `\x1b`; DEL and C1 as `\u009b`, which is also a valid escape in JSON strings.
  return code < 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/**
 * `text` with every control character written as an escape (`\x1b`,
 * `\u009b`). With `multiline`, newlines and tabs are kept: for text that is
 * meant to span lines, such as a stack dump.
 */
export const escapeControls = (text: string, multiline = false): string =>
  text.replace(controls, (char) => (multiline && (char === "\n" || char === "\t") ? char : escapeOne(char)))
