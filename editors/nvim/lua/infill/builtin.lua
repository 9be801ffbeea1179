--- Neovim 0.12+: the built-in vim.lsp.inline_completion draws and accepts; this module maps
--- the plugin's actions onto it. Accepting a word or a line reads what the built-in shows
--- (its extmark) and inserts that part itself, through `get({ on_accept })`.
local api = vim.api
local text = require('infill.text')
local lsp = require('infill.client')

local M = {}

local ic = vim.lsp.inline_completion
local enabled = true

--- The built-in's namespace (nvim.lsp.inline_completion), looked up when first needed.
local function namespace()
  return api.nvim_get_namespaces()['nvim.lsp.inline_completion']
end

--- The text on screen after the cursor (its hint chunks left out), or nil.
local function shown_text(bufnr)
  local ns = namespace()
  if not ns then
    return nil
  end
  local marks = api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })
  local mark = marks[1]
  if not mark then
    return nil
  end
  local details = mark[4]
  local function chunks(list)
    local out = {}
    for _, chunk in ipairs(list or {}) do
      if chunk[2] ~= 'ComplHintMore' then
        out[#out + 1] = chunk[1]
      end
    end
    return table.concat(out)
  end
  local lines = { chunks(details.virt_text) }
  for _, line in ipairs(details.virt_lines or {}) do
    lines[#lines + 1] = chunks(line)
  end
  return table.concat(lines, '\n')
end

function M.visible()
  local s = shown_text(api.nvim_get_current_buf())
  return s ~= nil and s ~= ''
end

function M.attach(bufnr)
  ic.enable(enabled, { bufnr = bufnr })
end

function M.detach(bufnr)
  ic.enable(false, { bufnr = bufnr })
end

function M.accept(kind)
  if not M.visible() then
    return false
  end
  if kind == 'all' then
    return ic.get() ~= false
  end
  local bufnr = api.nvim_get_current_buf()
  local shown = shown_text(bufnr)
  local part = kind == 'word' and text.next_word(shown) or text.next_line(shown)
  if part == shown then
    return ic.get() ~= false
  end
  return ic.get({
    on_accept = function(item)
      local row, col = unpack(api.nvim_win_get_cursor(0))
      local lines = vim.split(part, '\n', { plain = true })
      vim.go.undolevels = vim.go.undolevels -- an undo step of its own
      api.nvim_buf_set_text(bufnr, row - 1, col, row - 1, col, lines)
      vim.go.undolevels = vim.go.undolevels
      api.nvim_win_set_cursor(0, { row + #lines - 1, (#lines == 1 and col or 0) + #lines[#lines] })
      local command = item and item.command
      local id = command and type(command.arguments) == 'table' and command.arguments[1]
      lsp.event(lsp.get(bufnr), 'partiallyAccepted', id, text.units(part, 'utf-16'))
      return nil -- nothing more for the built-in to apply
    end,
  }) ~= false
end

function M.dismiss()
  if not M.visible() then
    return false
  end
  -- The built-in has no dismiss: switching it off and on for the buffer clears it.
  local bufnr = api.nvim_get_current_buf()
  ic.enable(false, { bufnr = bufnr })
  ic.enable(enabled, { bufnr = bufnr })
  return true
end

function M.cycle(step)
  if not M.visible() then
    return false
  end
  -- select() in 0.12; jump() in some earlier development builds
  local select = ic.select or ic.jump
  select({ count = step })
  return true
end

function M.trigger()
  if M.visible() then
    return false
  end
  ic.get() -- with nothing shown, get() asks the server (an Invoked request)
  return true
end

function M.set_enabled(value)
  enabled = value
  for _, client in ipairs(vim.lsp.get_clients({ name = lsp.name })) do
    for bufnr in pairs(client.attached_buffers or {}) do
      ic.enable(value, { bufnr = bufnr })
    end
  end
end

function M.enabled()
  return enabled
end

return M
