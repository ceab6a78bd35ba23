-- Texts whose strings are full of escapes, for timing the string reader with
-- `lua5.4 bench/compare_builds.lua OLD NEW "json:load quotes:load ..."`. Written by hand, so
-- they hold forms rr.dump never writes but legacy peers do (serpent's %q: `\9`, a backslash
-- before a newline). Each text is an array of the same string three times.

local function three(body)
  return '{"' .. body .. '","' .. body .. '","' .. body .. '"}'
end

local binary = {}
for i = 1, 64 do binary[i] = string.format("\\%03d", (i * 37) % 256) end

return {
  -- JSON kept in a string: every quote escaped.
  json = three(('{\\"id\\":12345,\\"name\\":\\"player one\\",\\"tags\\":[\\"a\\",\\"b\\"]}'):rep(6)),
  -- Chat text with letter escapes.
  text_nl = three(("first line of the chat message\\nsecond line\\tand a tab "):rep(5)),
  -- Nothing but escapes of two bytes.
  dense = three(("\\t\\n"):rep(100)),
  quotes = three(('\\"'):rep(150)),
  -- What serpent on Lua 5.1 writes for newlines, tabs and carriage returns.
  legacy = three(("line one\\\nline two\\9tab\\13 "):rep(8)),
  -- 64 bytes of binary data as three-digit escapes.
  binary = three(table.concat(binary)),
}
