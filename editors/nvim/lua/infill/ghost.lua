--- The plugin's own ghost text, for Neovim 0.10 and 0.11 (0.12 has vim.lsp.inline_completion).
---
--- A keystroke in insert mode (TextChangedI, CursorMovedI) either keeps the suggestion on
--- screen, when the buffer still matches it (the user typed its first characters), or clears
--- it at once, cancels the request in flight and starts the debounce timer; when the timer
--- fires, one `textDocument/inlineCompletion` request goes out. Its answer is drawn only if
--- nothing changed since it was asked for (same generation, changedtick, cursor and mode),
--- so a suggestion for text that is gone never reaches the screen.
---
--- The suggestion is one extmark at the cursor: the rest of its first line as inline virtual
--- text, its further lines as virtual lines. Accepting inserts exactly the suggested text
--- with nvim_buf_set_text (no keys are replayed, so no autoindent or abbreviation alters
--- it) as an undo step of its own.
local api = vim.api
local text = require('infill.text')
local lsp = require('infill.client')
local config = require('infill.config')

local M = {}

M.ns = api.nvim_create_namespace('infill')

local AUTOMATIC, INVOKED = 2, 1 -- lsp.InlineCompletionTriggerKind

local state = {
  enabled = true,
  timer = nil, ---@type uv.uv_timer_t?
  generation = 0, -- bumped by every edit or move that the suggestion does not survive
  pending = nil, ---@type { client: table, id: integer }?
  shown = nil, -- the suggestion on screen, see show()
  announced = {}, -- item ids reported as shown
  announced_count = 0,
}
M._state = state -- for tests and :InfillStatus

--- Is the suggestion on screen still right for the buffer as it is?
local function in_place(shown)
  if api.nvim_get_current_buf() ~= shown.bufnr
    or api.nvim_buf_get_changedtick(shown.bufnr) ~= shown.tick then
    return false
  end
  local cursor = api.nvim_win_get_cursor(0)
  return cursor[1] - 1 == shown.row and cursor[2] == shown.col
end

local function cursor_state(bufnr)
  local row, col = unpack(api.nvim_win_get_cursor(0))
  row = row - 1
  return row, col, api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1]
end

local function insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

-- --- drawing -----------------------------------------------------------------------------

local function render()
  local shown = state.shown
  api.nvim_buf_clear_namespace(shown.bufnr, M.ns, 0, -1)
  local item = shown.items[shown.index]
  local lines = vim.split(item.text, '\n', { plain = true })
  local hl, tabstop = config.options.hl_group, vim.bo[shown.bufnr].tabstop
  local start = vim.fn.strdisplaywidth(shown.line:sub(1, shown.col))
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { text.expand_tabs(lines[i], 0, tabstop), hl } }
  end
  local hint = #shown.items > 1 and { (' (%d/%d)'):format(shown.index, #shown.items), 'InfillHint' }
  local virt_text = lines[1] ~= '' and { { text.expand_tabs(lines[1], start, tabstop), hl } } or nil
  if hint then
    local last = #virt_lines > 0 and virt_lines[#virt_lines] or virt_text
    if last then
      table.insert(last, hint)
    else
      virt_text = { hint }
    end
  end
  api.nvim_buf_set_extmark(shown.bufnr, M.ns, shown.row, shown.col, {
    virt_text = virt_text,
    virt_text_pos = virt_text and 'inline' or nil,
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
  if item.id and not state.announced[item.id] then
    state.announced_count = state.announced_count + 1
    if state.announced_count > 1000 then -- ids of long-gone suggestions
      state.announced, state.announced_count = {}, 1
    end
    state.announced[item.id] = true
    lsp.event(lsp.get(shown.bufnr), 'shown', item.id)
  end
end

--- Clear the screen and forget the suggestion.
function M.clear()
  local shown = state.shown
  state.shown = nil
  if shown and api.nvim_buf_is_valid(shown.bufnr) then
    api.nvim_buf_clear_namespace(shown.bufnr, M.ns, 0, -1)
  end
end

local function cancel_pending()
  local pending = state.pending
  state.pending = nil
  if pending and not lsp.call(pending.client, 'is_stopped') then
    lsp.call(pending.client, 'cancel_request', pending.id)
  end
end

local function stop_timer()
  if state.timer then
    state.timer:stop()
  end
end

--- Turn the items of an answer into insertions at the cursor: an item whose range starts
--- before the cursor repeats the text typed since (dropped here), one whose range ends after
--- it on the line must end with the text it replaces (dropped too); anything else is skipped.
local function normalize(raw_items, row, col, line, encoding)
  local items, seen = {}, {}
  for _, raw in ipairs(raw_items) do
    local insert = text.insert_text(raw.insertText)
    local range = raw.range
    if insert and range then
      if range.start.line ~= row or range['end'].line ~= row then
        insert = nil
      else
        local first = text.byte_col(line, range.start.character, encoding)
        local last = text.byte_col(line, range['end'].character, encoding)
        if first < col then
          local typed = line:sub(first + 1, col)
          insert = vim.startswith(insert, typed) and insert:sub(#typed + 1) or nil
        end
        if insert and last > col then
          local replaced = line:sub(col + 1, last)
          insert = vim.endswith(insert, replaced) and insert:sub(1, #insert - #replaced) or nil
        end
      end
    end
    if insert and insert ~= '' and not seen[insert] then
      seen[insert] = true
      local command = type(raw.command) == 'table' and raw.command or nil
      local id = command and type(command.arguments) == 'table' and command.arguments[1]
      items[#items + 1] = {
        text = insert,
        command = command,
        id = type(id) == 'string' and id or nil,
        accepted = 0, -- characters accepted so far by word or line
      }
    end
  end
  return items
end

-- --- requests ----------------------------------------------------------------------------

--- Ask the server for completions at the cursor. `invoked`: the user asked (every engine
--- answers); `cycle`: merge the answer into the suggestion on screen and move by that step.
function M.request(invoked, cycle)
  local bufnr = api.nvim_get_current_buf()
  local client = lsp.get(bufnr)
  if not client or not state.enabled or not insert_mode() then
    return
  end
  if config.options.hide_during_completion and vim.fn.pumvisible() == 1 then
    return
  end
  cancel_pending()
  local generation = state.generation
  local row, col, line = cursor_state(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local encoding = client.offset_encoding or 'utf-16'
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = row, character = text.units(line:sub(1, col), encoding) },
    context = { triggerKind = invoked and INVOKED or AUTOMATIC },
  }
  local id
  local function on_answer(err, result)
    if state.pending and state.pending.id == id then
      state.pending = nil
    end
    -- Stale: anything typed or moved since, or another buffer, or out of insert mode.
    if err or type(result) ~= 'table' or generation ~= state.generation
      or api.nvim_get_current_buf() ~= bufnr or not insert_mode()
      or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return
    end
    local now_row, now_col = cursor_state(bufnr)
    if now_row ~= row or now_col ~= col then
      return
    end
    local items = normalize(result.items or result, row, col, line, encoding)
    if cycle and state.shown then
      M._merge(items, cycle)
    elseif #items > 0 then
      state.shown = {
        bufnr = bufnr, row = row, col = col, tick = tick, line = line,
        items = items, index = 1, invoked = invoked,
      }
      render()
    end
  end
  local ok
  ok, id = lsp.call(client, 'request', 'textDocument/inlineCompletion', params, on_answer, bufnr)
  if ok and id then
    state.pending = { client = client, id = id }
  end
end

function M._merge(items, step)
  local shown = state.shown
  local have = {}
  for _, item in ipairs(shown.items) do
    have[item.text] = true
  end
  for _, item in ipairs(items) do
    if not have[item.text] then
      shown.items[#shown.items + 1] = item
    end
  end
  shown.invoked = true
  shown.index = (shown.index - 1 + step) % #shown.items + 1
  render()
end

local function schedule_request()
  if not state.timer then
    state.timer = assert(vim.uv.new_timer())
  end
  state.timer:stop()
  state.timer:start(config.options.debounce_ms, 0, vim.schedule_wrap(function()
    M.request(false)
  end))
end

--- The user typed the start of the suggestion: keep the rest of it on screen.
local function typed_through(shown)
  if api.nvim_get_current_buf() ~= shown.bufnr then
    return false
  end
  local row, col, line = cursor_state(shown.bufnr)
  if row ~= shown.row or col <= shown.col
    or line:sub(1, shown.col) ~= shown.line:sub(1, shown.col)
    or line:sub(col + 1) ~= shown.line:sub(shown.col + 1) then
    return false
  end
  local typed = line:sub(shown.col + 1, col)
  local kept = {}
  for i, item in ipairs(shown.items) do
    if vim.startswith(item.text, typed) and #item.text > #typed then
      item.text = item.text:sub(#typed + 1)
      kept[#kept + 1] = item
      if i == shown.index then
        shown.index = #kept
      end
    end
  end
  if #kept == 0 then
    return false
  end
  if shown.index > #kept then
    shown.index = 1
  end
  shown.items, shown.col, shown.line = kept, col, line
  shown.tick = api.nvim_buf_get_changedtick(shown.bufnr)
  render()
  return true
end

--- TextChangedI / CursorMovedI / InsertEnter.
function M.on_change()
  if not state.enabled then
    return
  end
  local shown = state.shown
  if shown and (in_place(shown) or typed_through(shown)) then
    return
  end
  M.clear()
  cancel_pending()
  state.generation = state.generation + 1
  if lsp.get(api.nvim_get_current_buf()) then
    schedule_request()
  end
end

--- InsertLeave, BufLeave, :InfillToggle off.
function M.stop()
  stop_timer()
  cancel_pending()
  state.generation = state.generation + 1
  M.clear()
end

-- --- the user's actions ---------------------------------------------------------------------

--- A suggestion is on screen and still right for the buffer.
function M.visible()
  return state.shown ~= nil and in_place(state.shown)
end

--- Insert `part` at the cursor as one undo step; the cursor ends after it.
local function insert(shown, part)
  local lines = vim.split(part, '\n', { plain = true })
  -- Setting 'undolevels' (even to its own value) closes the undo step before and after the
  -- insertion: `u` takes back exactly the accepted text (:help undo-break).
  vim.bo[shown.bufnr].undolevels = vim.bo[shown.bufnr].undolevels
  api.nvim_buf_set_text(shown.bufnr, shown.row, shown.col, shown.row, shown.col, lines)
  vim.bo[shown.bufnr].undolevels = vim.bo[shown.bufnr].undolevels
  local row = shown.row + #lines - 1
  local col = (#lines == 1 and shown.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  return row, col
end

--- Accept the whole suggestion ('all'), or its next 'word' or 'line'. False when none is shown.
function M.accept(kind)
  if not M.visible() then
    return false
  end
  local shown = state.shown
  local item = shown.items[shown.index]
  local part = item.text
  if kind == 'word' then
    part = text.next_word(item.text)
  elseif kind == 'line' then
    part = text.next_line(item.text)
  end
  local client = lsp.get(shown.bufnr)
  stop_timer()
  cancel_pending()
  if part == item.text then
    M.clear()
    insert(shown, part)
    lsp.exec_command(client, item.command, shown.bufnr)
    return true
  end
  -- A part: the rest stays on screen, for this item and every other one that agrees.
  local row, col = insert(shown, part)
  local kept = {}
  for i, other in ipairs(shown.items) do
    if vim.startswith(other.text, part) then
      other.text = other.text:sub(#part + 1)
      kept[#kept + 1] = other
      if i == shown.index then
        shown.index = #kept
      end
    end
  end
  item.accepted = item.accepted + text.units(part, 'utf-16')
  lsp.event(client, 'partiallyAccepted', item.id, item.accepted)
  shown.items, shown.row, shown.col = kept, row, col
  shown.line = api.nvim_buf_get_lines(shown.bufnr, row, row + 1, true)[1]
  shown.tick = api.nvim_buf_get_changedtick(shown.bufnr)
  render()
  return true
end

--- Clear the suggestion until the next edit. False when none is shown.
function M.dismiss()
  if not M.visible() then
    return false
  end
  local shown = state.shown
  local item = shown.items[shown.index]
  M.stop()
  lsp.event(lsp.get(shown.bufnr), 'dismissed', item.id)
  return true
end

--- Show the next (step 1) or previous (-1) candidate; the first time, ask every engine for
--- one (an Invoked request). False when no suggestion is shown.
function M.cycle(step)
  if not M.visible() then
    return false
  end
  local shown = state.shown
  if not shown.invoked then
    M.request(true, step)
  elseif #shown.items > 1 then
    shown.index = (shown.index - 1 + step) % #shown.items + 1
    render()
  end
  return true
end

--- Ask for a suggestion now, from every engine.
function M.trigger()
  stop_timer()
  M.request(true)
  return true
end

function M.set_enabled(enabled)
  state.enabled = enabled
  if not enabled then
    M.stop()
  end
end

function M.enabled()
  return state.enabled
end

--- Start following the edits of `bufnr` (on LspAttach).
function M.attach(bufnr)
  local group = api.nvim_create_augroup('infill.ghost.' .. bufnr, { clear = true })
  api.nvim_create_autocmd({ 'TextChangedI', 'CursorMovedI' }, {
    group = group, buffer = bufnr, callback = M.on_change,
  })
  api.nvim_create_autocmd('InsertEnter', {
    group = group, buffer = bufnr,
    -- Scheduled: the cursor is where insert mode put it only after InsertEnter.
    callback = vim.schedule_wrap(M.on_change),
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group, buffer = bufnr, callback = M.stop,
  })
  api.nvim_create_autocmd('CompleteChanged', {
    group = group, buffer = bufnr,
    callback = function()
      if config.options.hide_during_completion then
        M.stop()
      end
    end,
  })
end

function M.detach(bufnr)
  pcall(api.nvim_del_augroup_by_name, 'infill.ghost.' .. bufnr)
  if state.shown and state.shown.bufnr == bufnr then
    M.stop()
  end
end

return M
