--- infill for Neovim: ghost-text code completion from the local `infill serve` language server.
---
---   require('infill').setup({ ... })   -- options: lua/infill/config.lua, :help infill-config
---
--- The functions below (accept, accept_word, accept_line, dismiss, next, prev, trigger) return
--- true when they acted and false when there was nothing to act on, so a mapping of your own
--- can fall back to the key's usual meaning.
local api = vim.api
local config = require('infill.config')
local lsp = require('infill.client')

local M = {}

M.did_setup = false

local function use_builtin()
  local has = vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  local wanted = config.options.builtin
  if wanted == true and not has then
    vim.notify_once('infill: builtin = true needs Neovim 0.12 (vim.lsp.inline_completion); '
      .. 'using the plugin renderer', vim.log.levels.WARN)
  end
  return has and wanted ~= false
end

--- The module that draws and accepts: Neovim's own (0.12+) or the plugin's.
function M.renderer()
  return use_builtin() and require('infill.builtin') or require('infill.ghost')
end

function M.accept() return M.renderer().accept('all') end
function M.accept_word() return M.renderer().accept('word') end
function M.accept_line() return M.renderer().accept('line') end
function M.dismiss() return M.renderer().dismiss() end
function M.next() return M.renderer().cycle(1) end
function M.prev() return M.renderer().cycle(-1) end
function M.trigger() return M.renderer().trigger() end
--- A suggestion is on screen.
function M.visible() return M.renderer().visible() end

local ACTIONS = {
  accept = { 'accept', 'infill: accept the suggestion' },
  accept_word = { 'accept_word', 'infill: accept the next word of the suggestion' },
  accept_line = { 'accept_line', 'infill: accept the next line of the suggestion' },
  dismiss = { 'dismiss', 'infill: dismiss the suggestion' },
  next = { 'next', 'infill: next candidate' },
  prev = { 'prev', 'infill: previous candidate' },
  trigger = { 'trigger', 'infill: ask for a suggestion now' },
}

--- Buffer-local insert-mode keys. With a suggestion on screen a key acts on it (through
--- <Cmd>, outside the expression's text lock); otherwise it does what it did before.
local function map_keys(bufnr)
  for name, lhs in pairs(config.options.keymaps) do
    if lhs and lhs ~= '' then
      local fn, desc = ACTIONS[name][1], ACTIONS[name][2]
      vim.keymap.set('i', lhs, function()
        if name == 'trigger' or M.visible() then
          return ('<Cmd>lua require("infill").%s()<CR>'):format(fn)
        end
        return lhs
      end, { buffer = bufnr, expr = true, replace_keycodes = true, silent = true, desc = desc })
    end
  end
end

local function unmap_keys(bufnr)
  for _, lhs in pairs(config.options.keymaps) do
    if lhs and lhs ~= '' then
      pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
    end
  end
end

local function wants(bufnr)
  if not api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= '' then
    return false
  end
  local filetype = vim.bo[bufnr].filetype
  if filetype == '' then
    return false
  end
  local list = config.options.filetypes
  return vim.list_contains(list, '*') or vim.list_contains(list, filetype)
end

local function highlights()
  api.nvim_set_hl(0, 'InfillGhost', { link = 'Comment', default = true })
  api.nvim_set_hl(0, 'InfillHint', { link = 'NonText', default = true })
end

--- :InfillToggle [on|off] and :InfillStatus.
function M.create_commands()
  api.nvim_create_user_command('InfillToggle', function(args)
    local value = ({ on = true, off = false })[args.args]
    if args.args ~= '' and value == nil then
      vim.notify('infill: :InfillToggle takes on, off or nothing', vim.log.levels.ERROR)
      return
    end
    M.toggle(value)
  end, {
    nargs = '?',
    complete = function() return { 'on', 'off' } end,
    desc = 'infill: switch ghost text on or off',
  })
  api.nvim_create_user_command('InfillStatus', function()
    M.status()
  end, { desc = 'infill: server, models, device and latency' })
end

--- Set the plugin up: the server starts for buffers of the configured filetypes.
function M.setup(user)
  config.set(user)
  M.did_setup = true
  M.create_commands()
  highlights()
  require('infill.ghost').set_enabled(config.options.enabled)
  if use_builtin() then
    require('infill.builtin').set_enabled(config.options.enabled)
  end
  local group = api.nvim_create_augroup('infill', { clear = true })
  api.nvim_create_autocmd('ColorScheme', { group = group, callback = highlights })
  api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(args)
      if wants(args.buf) then
        lsp.start(args.buf)
      end
    end,
  })
  -- fn(buf) when our server attaches to or detaches from a buffer
  local function on_our_client(event, fn)
    api.nvim_create_autocmd(event, {
      group = group,
      callback = function(args)
        local client = vim.lsp.get_client_by_id(args.data.client_id)
        if client and client.name == lsp.name then
          fn(args.buf)
        end
      end,
    })
  end
  on_our_client('LspAttach', function(buf)
    M.renderer().attach(buf)
    map_keys(buf)
  end)
  on_our_client('LspDetach', function(buf)
    M.renderer().detach(buf)
    unmap_keys(buf)
  end)
  -- Buffers opened before setup() ran (lazy loading).
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and wants(bufnr) then
      lsp.start(bufnr)
    end
  end
end

--- :InfillToggle [on|off]
function M.toggle(value)
  local renderer = M.renderer()
  if value == nil then
    value = not renderer.enabled()
  end
  renderer.set_enabled(value)
  vim.notify('infill: ghost text ' .. (value and 'on' or 'off'))
  return value
end

local function ms(summary)
  if type(summary) ~= 'table' or (summary.count or 0) == 0 then
    return 'none yet'
  end
  return ('median %s ms, p90 %s ms, last %s ms over %d'):format(summary.median, summary.p90,
    summary.last, summary.count)
end

--- The server's status as lines of text (also used by :checkhealth).
function M.status_lines(status)
  local models = {}
  for engine, name in pairs(status.models or {}) do
    models[#models + 1] = engine .. ': ' .. name
  end
  table.sort(models)
  local requests = status.requests or {}
  local lines = {
    ('server %s: %s%s'):format(status.version or '?', status.state,
      status.error ~= vim.NIL and status.error and (' (' .. status.error .. ')') or ''),
    'device: ' .. tostring(status.device ~= vim.NIL and status.device or 'none'),
    'models: ' .. (#models > 0 and table.concat(models, ', ') or 'none'),
    ('requests: %d, completed %d, from cache %d, empty %d, errors %d'):format(
      requests.requests or 0, requests.completed or 0, requests.fromCache or 0,
      requests.empty or 0, requests.errors or 0),
    'latency: ' .. ms(requests.latencyMs),
    'ghost text: ' .. (M.renderer().enabled() and 'on' or 'off')
      .. (use_builtin() and ' (vim.lsp.inline_completion)' or ' (plugin renderer)'),
  }
  return lines
end

--- :InfillStatus
function M.status()
  local status, why = lsp.status(0)
  if not status then
    vim.notify('infill: ' .. why, vim.log.levels.WARN)
    return nil
  end
  vim.notify(table.concat(M.status_lines(status), '\n'))
  return status
end

return M
