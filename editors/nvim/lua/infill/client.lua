--- The language client: starting `infill serve`, and the few calls whose spelling differs
--- between Neovim 0.10 (`client.request(...)`) and 0.11+ (`client:request(...)`).
local config = require('infill.config')

local M = {}

M.name = 'infill'
M.STATUS = 'infill/status' -- request: models, device, readiness, latencies
M.EVENT = 'infill/event' -- notification: shown / partiallyAccepted / dismissed

local METHOD_STYLE = vim.fn.has('nvim-0.11') == 1

--- client:name(...) on 0.11+, client.name(...) on 0.10.
function M.call(client, name, ...)
  if METHOD_STYLE then
    return client[name](client, ...)
  end
  return client[name](...)
end

--- The infill client attached to `bufnr` (any infill client when bufnr is nil).
function M.get(bufnr)
  local get_clients = vim.lsp.get_clients or vim.lsp.get_active_clients
  for _, client in ipairs(get_clients({ name = M.name, bufnr = bufnr })) do
    if not M.call(client, 'is_stopped') then
      return client
    end
  end
  return nil
end

local warned_missing = false

--- The server command, or nil (and one error message) when it is not executable.
function M.command()
  local cmd = config.options.cmd
  if vim.fn.executable(cmd[1]) == 1 then
    return cmd
  end
  if not warned_missing then
    warned_missing = true
    vim.schedule(function()
      vim.notify(('infill: %q is not executable: install the infill package (pip install -e .) '
        .. 'or set cmd in setup(); completions are off'):format(cmd[1]), vim.log.levels.ERROR)
    end)
  end
  return nil
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  -- Neovim before 0.12 does not declare the 3.18 capability; the server does not need it,
  -- but saying so is correct and harmless.
  caps.textDocument = caps.textDocument or {}
  caps.textDocument.inlineCompletion = caps.textDocument.inlineCompletion
    or { dynamicRegistration = false }
  return caps
end

--- The server's options as a JSON object: an empty Lua table would go out as [] (a list).
function M.server_options()
  local server = config.options.server
  return next(server) == nil and vim.empty_dict() or server
end

--- Start (or reuse) the server for `bufnr` and attach it; the client id or nil.
function M.start(bufnr)
  local cmd = M.command()
  if not cmd then
    return nil
  end
  local options = config.options
  local root = vim.fs.root and vim.fs.root(bufnr, options.root_markers) or nil
  return vim.lsp.start({
    name = M.name,
    cmd = cmd,
    root_dir = root or vim.fn.getcwd(),
    init_options = M.server_options(),
    settings = { infill = M.server_options() },
    capabilities = capabilities(),
  }, {
    bufnr = bufnr,
    -- One process for every workspace: each one would load the models again.
    reuse_client = function(client, conf)
      return client.name == conf.name and not M.call(client, 'is_stopped')
    end,
  })
end

--- Tell the server about a suggestion (shown, partiallyAccepted, dismissed): it logs the
--- event locally (lsp_server/events.py). `id` is the item's command argument.
function M.event(client, kind, id, accepted_length)
  if not client or type(id) ~= 'string' then
    return
  end
  M.call(client, 'notify', M.EVENT, { type = kind, id = id, acceptedLength = accepted_length })
end

--- Run an item's command (the server's `infill.accepted`) as Neovim runs any LSP command: a
--- client-side handler when one is registered, else `workspace/executeCommand`.
function M.exec_command(client, command, bufnr)
  if not client or type(command) ~= 'table' or type(command.command) ~= 'string' then
    return
  end
  local handler = (client.commands or {})[command.command] or vim.lsp.commands[command.command]
  if handler then
    handler(command, { bufnr = bufnr, client_id = client.id })
    return
  end
  M.call(client, 'request', 'workspace/executeCommand',
    { command = command.command, arguments = command.arguments }, function() end, bufnr)
end

--- `infill/status` through `request_sync`, waiting up to `timeout_s` for the models to finish
--- loading (0: ask once). Returns status (and a note when they are still loading), or nil
--- and why not.
function M.wait_status(request_sync, timeout_s)
  local deadline = vim.uv.hrtime() + timeout_s * 1e9
  local last, why
  while true do
    local response, err = request_sync(M.STATUS, vim.empty_dict(), 10000)
    if response and response.result then
      last = response.result
      if last.state == 'ready' or last.state == 'failed' then
        return last
      end
    else
      why = (response and response.err and response.err.message) or err or 'no answer'
    end
    if vim.uv.hrtime() >= deadline then
      break
    end
    vim.wait(200)
  end
  if last then
    return last, ('models still %s after %d s'):format(last.state, timeout_s)
  end
  return nil, why
end

--- The running client's status (see wait_status), or nil and why.
function M.status(timeout_s)
  local client = M.get()
  if not client then
    return nil, 'the infill server is not running (open a file of a configured filetype)'
  end
  return M.wait_status(function(method, params, timeout_ms)
    return M.call(client, 'request_sync', method, params, timeout_ms)
  end, timeout_s or config.options.status_timeout)
end

return M
