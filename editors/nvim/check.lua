-- A headless end-to-end check of `archc lsp` with Neovim's built-in LSP client (Neovim 0.7 or later): attach the
-- server to the file given on the command line, wait for its diagnostics, print them with the hover text and
-- the inlay hints a real client receives, and quit (status 1 when no diagnostics arrived).
-- Run through editors/nvim-check.sh.
local archc = os.getenv('ARCHC') or 'archc'

local function out(line)
  io.stdout:write(line .. '\n')
end

vim.api.nvim_create_autocmd('VimEnter', {
  callback = function()
    local buf = vim.api.nvim_get_current_buf()
    local name = vim.fn.expand('%')
    local client_id = vim.lsp.start_client({ name = 'archc', cmd = { archc, 'lsp' }, root_dir = vim.fn.getcwd() })
    vim.lsp.buf_attach_client(buf, client_id)
    local received = vim.wait(20000, function()
      return #vim.diagnostic.get(buf) > 0
    end, 50)
    if not received then
      out('no diagnostics received from `' .. archc .. ' lsp`')
      vim.cmd('cquit 1')
      return
    end
    local diagnostics = vim.diagnostic.get(buf)
    out(string.format('%s: %d diagnostic(s) from archc lsp', name, #diagnostics))
    for _, d in ipairs(diagnostics) do
      local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or '?'
      out(string.format('%s:%d:%d: %s[%s] %s', name, d.lnum + 1, d.col + 1,
        vim.diagnostic.severity[d.severity], code, d.message:gsub('\n', '\n    ')))
    end
    local client = vim.lsp.get_client_by_id(client_id)
    local document = { uri = vim.uri_from_bufnr(buf) }
    local first = diagnostics[1]
    local hover = client.request_sync('textDocument/hover',
      { textDocument = document, position = { line = first.lnum, character = first.col } }, 5000, buf)
    if hover and hover.result and hover.result.contents then
      out(string.format('hover at %d:%d:', first.lnum + 1, first.col + 1))
      for line in hover.result.contents.value:gmatch('[^\n]+') do
        out('    ' .. line)
      end
    end
    local lines = vim.api.nvim_buf_line_count(buf)
    local hints = client.request_sync('textDocument/inlayHint', {
      textDocument = document,
      range = { start = { line = 0, character = 0 }, ['end'] = { line = lines, character = 0 } },
    }, 5000, buf)
    if hints and hints.result then
      out(string.format('inlay hints: %d', #hints.result))
      for _, hint in ipairs(hints.result) do
        out(string.format('    line %d: %s', hint.position.line + 1, hint.label))
      end
    end
    vim.lsp.stop_client(client_id)
    vim.cmd('qall!')
  end,
})
