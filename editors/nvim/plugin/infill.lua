-- The commands only (setup() defines them too, for plugin managers that skip plugin/ files);
-- nothing starts until require('infill').setup() is called.
if vim.g.loaded_infill then
  return
end
vim.g.loaded_infill = true
require('infill').create_commands()
