--- :checkhealth infill: Neovim version, the server command, the models loaded, the device,
--- and the latency of a completion. With no server running it starts one of its own for the
--- check (the same command and options as setup()), asks it for one completion, and stops it.
local config = require('infill.config')
local lsp = require('infill.client')

local M = {}

local health = vim.health

local PROBE = { uri = 'file:///infill-checkhealth.py', text = 'def add(a, b):\n    return ' }

--- A server of the check's own: request_sync(method, params, timeout_ms) and stop().
local function start_own_server(cmd)
  local messages = {}
  local ok, rpc = pcall(vim.lsp.rpc.start, cmd, {
    notification = function(method, params)
      if method == 'window/showMessage' and type(params) == 'table' then
        messages[#messages + 1] = params.message
      end
    end,
    server_request = function(method, params)
      if method == 'workspace/configuration' then
        local items = {}
        for _ in ipairs(params.items or {}) do
          items[#items + 1] = lsp.server_options()
        end
        return items
      end
      return vim.NIL
    end,
  })
  if not ok then
    return nil, tostring(rpc)
  end
  local function request_sync(method, params, timeout_ms)
    local done, answer = false, nil
    rpc.request(method, params, function(err, result)
      done, answer = true, { err = err, result = result }
    end)
    if not vim.wait(timeout_ms, function() return done end, 10) then
      return nil, 'timeout'
    end
    return answer
  end
  local init = request_sync('initialize', {
    processId = vim.fn.getpid(),
    rootUri = vim.NIL,
    capabilities = vim.lsp.protocol.make_client_capabilities(),
    initializationOptions = lsp.server_options(),
    clientInfo = { name = 'Neovim :checkhealth infill' },
  }, 30000)
  if not init or init.err then
    rpc.terminate()
    return nil, 'no answer to initialize' .. (init and init.err and (': ' .. init.err.message) or '')
  end
  rpc.notify('initialized', vim.empty_dict())
  return {
    request_sync = request_sync,
    notify = rpc.notify,
    messages = messages,
    stop = function()
      request_sync('shutdown', vim.NIL, 2000)
      rpc.notify('exit', vim.NIL)
      vim.defer_fn(function()
        if not rpc.is_closing() then
          rpc.terminate()
        end
      end, 2000)
    end,
  }
end

--- One completion through the check's own server: milliseconds, or nil and why.
local function probe(server)
  server.notify('textDocument/didOpen', { textDocument = {
    uri = PROBE.uri, languageId = 'python', version = 1, text = PROBE.text } })
  local started = vim.uv.hrtime()
  local answer, err = server.request_sync('textDocument/inlineCompletion', {
    textDocument = { uri = PROBE.uri },
    position = { line = 1, character = 11 },
    context = { triggerKind = 2 }, -- Automatic, as while typing: one engine
  }, 60000)
  if not answer or answer.err then
    return nil, err or answer.err.message
  end
  return (vim.uv.hrtime() - started) / 1e6
end

local function report(status, probe_ms)
  local lines = require('infill').status_lines(status)
  if status.state ~= 'ready' then
    health.error(('models not loaded: %s'):format(lines[1]), {
      'The server says why above; check the options given to setup({ server = ... })',
      'and that the model folders exist.' })
    return
  end
  local models = {}
  for engine, name in pairs(status.models or {}) do
    models[#models + 1] = engine .. ' = ' .. name
  end
  table.sort(models)
  health.ok(('models loaded in %s s: %s'):format(tostring(status.loadSeconds),
    table.concat(models, ', ')))
  if status.error ~= nil and status.error ~= vim.NIL then
    health.warn('serving with part of the models: ' .. status.error)
  end
  health.ok('device: ' .. tostring(status.device))
  for _, note in ipairs(status.fallbacks or {}) do
    health.warn(note)
  end
  local latency = (status.requests or {}).latencyMs or {}
  if probe_ms then
    health.ok(('latency: a test completion took %.0f ms (the first after loading)'):format(probe_ms))
  elseif (latency.count or 0) > 0 then
    health.ok(('latency: median %s ms, p90 %s ms over the last %d completions'):format(
      latency.median, latency.p90, latency.count))
  else
    health.info('latency: no completion yet')
  end
end

function M.check()
  health.start('infill')
  if vim.fn.has('nvim-0.10') == 0 then
    health.error('Neovim 0.10 or newer is needed (inline virtual text)')
    return
  end
  local builtin = vim.lsp.inline_completion ~= nil and config.options.builtin ~= false
  health.ok(('Neovim %s: %s'):format(tostring(vim.version()),
    builtin and 'ghost text by vim.lsp.inline_completion' or 'ghost text by the plugin'))
  if require('infill').did_setup then
    health.ok('setup() called; filetypes: ' .. table.concat(config.options.filetypes, ', '))
  else
    health.warn("require('infill').setup() has not been called: no buffer starts the server",
      { "Call require('infill').setup({}) in your config (see :help infill-setup)." })
  end

  local cmd = config.options.cmd
  if vim.fn.executable(cmd[1]) == 0 then
    health.error(('server not found: %q is not executable'):format(cmd[1]), {
      'Install the package (pip install -e . in the infill checkout) into an environment',
      'on $PATH, or set cmd = { "/path/to/venv/bin/infill", "serve" } in setup().' })
    return
  end
  health.ok(('server found: %s (%s)'):format(table.concat(cmd, ' '), vim.fn.exepath(cmd[1])))

  local timeout = config.options.status_timeout
  if lsp.get() then
    local status, why = lsp.status(timeout)
    if not status then
      health.error('the running server does not answer infill/status: ' .. tostring(why))
      return
    end
    report(status)
    if why then
      health.warn(why)
    end
    return
  end

  health.info('no infill server running: starting one for this check')
  local server, why = start_own_server(cmd)
  if not server then
    health.error('the server did not start: ' .. tostring(why))
    return
  end
  local ok, err = pcall(function()
    local status, late = lsp.wait_status(server.request_sync, timeout)
    if not status then
      health.error('the server does not answer infill/status: ' .. tostring(late))
      return
    end
    local probe_ms, probe_err
    if status.state == 'ready' then
      probe_ms, probe_err = probe(server)
      local after = server.request_sync(lsp.STATUS, vim.empty_dict(), 5000)
      status = after and after.result or status
    end
    report(status, probe_ms)
    if late then
      health.warn(late)
    end
    if probe_err then
      health.warn('a test completion failed: ' .. probe_err)
    end
    for _, message in ipairs(server.messages) do
      health.info('server said: ' .. message)
    end
  end)
  server.stop()
  if not ok then
    health.error('checking the server failed: ' .. tostring(err))
  end
end

return M
