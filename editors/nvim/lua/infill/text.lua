--- Pure text helpers: no editor state, so each can be checked on its own.
local M = {}

--- Bytes of the UTF-8 character whose first byte is `byte`.
local function char_len(byte)
  if byte < 0x80 then
    return 1
  elseif byte >= 0xF0 then
    return 4
  elseif byte >= 0xE0 then
    return 3
  elseif byte >= 0xC0 then
    return 2
  end
  return 1 -- a stray continuation byte counts as one character
end

--- Code units of `s` in an LSP position encoding ('utf-8', 'utf-16' or 'utf-32').
function M.units(s, encoding)
  if encoding == 'utf-8' then
    return #s
  end
  local n, i = 0, 1
  while i <= #s do
    local len = char_len(s:byte(i))
    n = n + ((encoding == 'utf-16' and len == 4) and 2 or 1)
    i = i + len
  end
  return n
end

--- Byte offset in `line` of the LSP `character` index (clamped to the line's end).
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local units, i = 0, 1
  while i <= #line and units < character do
    local len = char_len(line:byte(i))
    units = units + ((encoding == 'utf-16' and len == 4) and 2 or 1)
    i = i + len
  end
  return i - 1
end

--- The next word of a suggestion: any blanks (line breaks included), then a run of keyword
--- characters (letters, digits, _, any non-ASCII character) or else a run of other
--- non-blank characters. Never splits a UTF-8 character.
function M.next_word(text)
  local word = text:match('^%s*[%w_\128-\255]+') or text:match('^%s*[^%w_%s\128-\255]+')
  return word or text
end

--- The next line of a suggestion: up to the line break; a suggestion that starts with a line
--- break gives the break and the line after it.
function M.next_line(text)
  if text:sub(1, 1) == '\n' then
    local rest = text:sub(2)
    return '\n' .. (rest:match('^[^\n]*') or '')
  end
  return text:match('^[^\n]*') or text
end

--- `s` with its tabs replaced by the spaces they take when `s` starts at display column
--- `start` (0-based): virtual text does not expand tabs itself.
function M.expand_tabs(s, start, tabstop)
  if not s:find('\t', 1, true) then
    return s
  end
  tabstop = tabstop > 0 and tabstop or 8
  local out, col = {}, start
  for ch in s:gmatch('[%z\1-\127\194-\244][\128-\191]*') do
    if ch == '\t' then
      local n = tabstop - col % tabstop
      out[#out + 1] = string.rep(' ', n)
      col = col + n
    else
      out[#out + 1] = ch
      col = col + vim.fn.strdisplaywidth(ch)
    end
  end
  return table.concat(out)
end

--- The text of an InlineCompletionItem's insertText: a string, or a snippet StringValue
--- whose text has no tab stops or placeholders (nil for a real snippet, shown as nothing).
function M.insert_text(value)
  if type(value) == 'string' then
    return value
  end
  if type(value) == 'table' and type(value.value) == 'string' then
    local snippet = value.value
    -- \$, \} and \\ are escapes; any other $ or } is snippet syntax
    if not snippet:gsub('\\[%$}\\]', ''):find('[%$}]') then
      return (snippet:gsub('\\([%$}\\])', '%1'))
    end
  end
  return nil
end

return M
