--- The plugin's options: the documented defaults, merged with what `setup()` is given.
--- An invalid value is reported once and replaced by its default, never an error at startup.
local M = {}

M.defaults = {
  -- The language server. `infill serve` speaks LSP on stdio; a checkout without the console
  -- script on $PATH can use { '/path/to/.venv/bin/python', '-m', 'lsp_server' }.
  cmd = { 'infill', 'serve' },
  -- Filetypes that start the server; { '*' } for every buffer that has a filetype.
  filetypes = {
    'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
    'go', 'rust', 'java', 'c', 'cpp',
  },
  -- The server's options (lsp_server/options.py), sent as initializationOptions and as the
  -- `infill` settings section, e.g. { engine = 'auto', maxTokens = 64, device = 'cuda' }.
  server = {},
  -- Where a workspace starts (vim.fs.root); every root shares one server process.
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  -- Ghost text on or off at startup (:InfillToggle flips it).
  enabled = true,
  -- 'auto': Neovim's own vim.lsp.inline_completion where it exists (0.12+), else the plugin's
  -- renderer; true: require the built-in one; false: always the plugin's renderer.
  builtin = 'auto',
  -- Milliseconds without a keystroke before an automatic request is sent (plugin renderer).
  debounce_ms = 75,
  -- No ghost text while the popup menu is visible.
  hide_during_completion = true,
  -- Highlight group of the ghost text (linked to Comment unless the colorscheme defines it).
  hl_group = 'InfillGhost',
  -- Insert-mode keys; false (or '') leaves one unmapped. A key that has nothing to act on
  -- (no suggestion shown) does what it does without the plugin.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<C-Right>',
    accept_line = '<S-Tab>',
    dismiss = '<C-]>',
    next = '<M-]>',
    prev = '<M-[>',
    trigger = '<M-\\>',
  },
  -- Seconds :checkhealth and :InfillStatus wait for the models to load.
  status_timeout = 60,
}

local TYPES = {
  cmd = 'table', filetypes = 'table', server = 'table', root_markers = 'table',
  enabled = 'boolean', debounce_ms = 'number', hide_during_completion = 'boolean',
  hl_group = 'string', keymaps = 'table', status_timeout = 'number',
}

M.options = vim.deepcopy(M.defaults)

local function warn(message)
  vim.schedule(function()
    vim.notify('infill: ' .. message, vim.log.levels.WARN)
  end)
end

--- Merge `user` over the defaults; return the options in force.
function M.set(user)
  user = user or {}
  local options = vim.deepcopy(M.defaults)
  for key, value in pairs(user) do
    if M.defaults[key] == nil then
      warn(('unknown option %q ignored'):format(key))
    elseif key == 'builtin' then
      if value == 'auto' or type(value) == 'boolean' then
        options.builtin = value
      else
        warn("option builtin must be 'auto', true or false; using 'auto'")
      end
    elseif type(value) ~= TYPES[key] then
      warn(('option %s must be a %s; using the default'):format(key, TYPES[key]))
    elseif key == 'keymaps' then
      for name, lhs in pairs(value) do
        if M.defaults.keymaps[name] == nil then
          warn(('unknown keymap %q ignored'):format(name))
        elseif lhs == false or type(lhs) == 'string' then
          options.keymaps[name] = lhs
        else
          warn(('keymap %s must be a key or false'):format(name))
        end
      end
    elseif key == 'cmd' and (#value == 0 or type(value[1]) ~= 'string') then
      warn('option cmd must be a list like { "infill", "serve" }; using the default')
    else
      options[key] = value
    end
  end
  options.debounce_ms = math.max(0, math.floor(options.debounce_ms))
  M.options = options
  return options
end

return M
