-- Test instrumentation, loaded by the test init.lua. It watches the plugin from outside:
--
-- * every textDocument/inlineCompletion request of the infill client is logged with the buffer
--   text and cursor it was sent for, and each item of its answer becomes a "proposal": the whole
--   document the item would make (document at request time + item inserted at its cursor);
-- * every extmark painted in the plugin's namespace is checked against those proposals: the
--   document the user would get by accepting the painted text now must be one of them, and the
--   mark must sit at the cursor. A paint for text that has changed since fails the check.
--
-- `T.hold = true` keeps answers back (in T.held) until `T.release()`: a test can let a keystroke
-- happen between an answer's arrival and its delivery, deterministically.
local api = vim.api

local T = {
  requests = 0, answers = 0, nonempty_answers = 0, stale_answers = 0,
  paints = 0, bad_paints = {}, proposals = {}, held = {}, hold = false, messages = {},
}
_G.infill_test = T

local function document(lines, row, col, text)
  local copy = vim.deepcopy(lines)
  local line = copy[row + 1]
  copy[row + 1] = line:sub(1, col) .. text .. line:sub(col + 1)
  return table.concat(copy, '\n')
end

--- The ghost text of an extmark's details: chunks in the ghost highlight, lines joined.
function T.mark_text(details)
  local hl = require('infill.config').options.hl_group
  local function join(chunks)
    local out = {}
    for _, chunk in ipairs(chunks or {}) do
      if chunk[2] == hl then
        out[#out + 1] = chunk[1]
      end
    end
    return table.concat(out)
  end
  local lines = { join(details.virt_text) }
  for _, line in ipairs(details.virt_lines or {}) do
    lines[#lines + 1] = join(line)
  end
  return table.concat(lines, '\n')
end

--- nil when the painted suggestion (row, col, text) is right for the buffer now, else why not.
function T.judge(bufnr, row, col, text)
  if api.nvim_get_current_buf() ~= bufnr then
    return 'painted in a buffer that is not current'
  end
  local cursor = api.nvim_win_get_cursor(0)
  if cursor[1] - 1 ~= row or cursor[2] ~= col then
    return ('painted at %d:%d, cursor at %d:%d'):format(row, col, cursor[1] - 1, cursor[2])
  end
  local doc = document(api.nvim_buf_get_lines(bufnr, 0, -1, true), row, col, text)
  if not T.proposals[doc] then
    return 'painted text proposed for no state of the buffer: ' .. vim.inspect(text)
  end
  return nil
end

--- The suggestion on screen now: { row, col, text, problem } or nil.
function T.ghost()
  local bufnr = api.nvim_get_current_buf()
  local ns = require('infill.ghost').ns
  local marks = api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  assert(#marks == 1, 'more than one ghost extmark')
  local row, col, details = marks[1][2], marks[1][3], marks[1][4]
  local text = T.mark_text(details)
  local hint = ''
  for _, chunks in ipairs({ details.virt_text or {}, unpack(details.virt_lines or {}) }) do
    for _, chunk in ipairs(chunks) do
      if chunk[2] == 'InfillHint' then
        hint = chunk[1]
      end
    end
  end
  return { row = row, col = col, text = text, hint = hint, problem = T.judge(bufnr, row, col, text) }
end

local set_extmark = api.nvim_buf_set_extmark
api.nvim_buf_set_extmark = function(bufnr, ns, row, col, opts)
  local id = set_extmark(bufnr, ns, row, col, opts)
  if ns == require('infill.ghost').ns then
    T.paints = T.paints + 1
    local real = bufnr == 0 and api.nvim_get_current_buf() or bufnr
    local problem = T.judge(real, row, col, T.mark_text(opts))
    if problem then
      T.bad_paints[#T.bad_paints + 1] = problem
    end
  end
  return id
end

function T.instrument(client)
  if client.infill_instrumented then
    return
  end
  client.infill_instrumented = true
  local request = client.request
  client.request = function(self, method, params, handler, bufnr)
    if method ~= 'textDocument/inlineCompletion' then
      return request(self, method, params, handler, bufnr)
    end
    T.requests = T.requests + 1
    local buf = api.nvim_get_current_buf()
    local lines = api.nvim_buf_get_lines(buf, 0, -1, true)
    local row, col = unpack(api.nvim_win_get_cursor(0))
    local tick = api.nvim_buf_get_changedtick(buf)
    return request(self, method, params, function(err, result, ctx)
      local items = type(result) == 'table' and (result.items or result) or {}
      for _, item in ipairs(items) do
        if type(item.insertText) == 'string' then
          T.proposals[document(lines, row - 1, col, item.insertText)] = true
        end
      end
      T.answers = T.answers + 1
      if #items > 0 then
        T.nonempty_answers = T.nonempty_answers + 1
      end
      if not api.nvim_buf_is_valid(buf) or api.nvim_buf_get_changedtick(buf) ~= tick then
        T.stale_answers = T.stale_answers + 1
      end
      local deliver = function()
        handler(err, result, ctx)
      end
      if T.hold then
        T.held[#T.held + 1] = { deliver = deliver, items = #items, buf = buf, tick = tick }
        return
      end
      deliver()
    end, bufnr)
  end
end

--- Deliver the answers held back; for each, { items = n, stale = the buffer changed since }.
function T.release()
  local held, out = T.held, {}
  T.held, T.hold = {}, false
  for _, h in ipairs(held) do
    out[#out + 1] = { items = h.items, stale = api.nvim_buf_get_changedtick(h.buf) ~= h.tick }
    h.deliver()
  end
  return out
end

--- Nothing in flight: no request pending and no debounce timer running.
function T.quiet()
  local state = require('infill.ghost')._state
  return state.pending == nil and not (state.timer and state.timer:is_active())
end

function T.reset()
  T.requests, T.answers, T.nonempty_answers, T.stale_answers = 0, 0, 0, 0
  T.paints, T.bad_paints, T.held, T.hold, T.messages = 0, {}, {}, false, {}
end

-- :InfillStatus and friends report through vim.notify: keep what they say.
local notify = vim.notify
T.warnings = {} -- every warning or error shown, never reset
vim.notify = function(message, level, opts)
  T.messages[#T.messages + 1] = { message = message, level = level }
  if level and level >= vim.log.levels.WARN then
    T.warnings[#T.warnings + 1] = message
  end
  return notify(message, level, opts)
end

api.nvim_create_autocmd('LspAttach', {
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'infill' then
      T.instrument(client)
    end
  end,
})

return T
