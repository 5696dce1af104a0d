// Starts `archc lsp` for .arch files (and architecture YAML files) through vscode-languageclient.
'use strict';

const fs = require('fs');
const path = require('path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

/** The archc binary: the `archc.server.path` setting, else a workspace build, else `archc` on PATH. */
function serverPath() {
  const configured = vscode.workspace.getConfiguration('archc').get('server.path');
  if (configured) {
    return configured;
  }
  const exe = process.platform === 'win32' ? 'archc.exe' : 'archc';
  for (const folder of vscode.workspace.workspaceFolders || []) {
    for (const profile of ['release', 'debug']) {
      const candidate = path.join(folder.uri.fsPath, 'target', profile, exe);
      if (fs.existsSync(candidate)) {
        return candidate;
      }
    }
  }
  return exe;
}

function activate(context) {
  const command = serverPath();
  const yamlPattern = vscode.workspace.getConfiguration('archc').get('yaml.pattern');
  const server = { command, args: ['lsp'] };
  client = new LanguageClient(
    'archc',
    'archc language server',
    { run: server, debug: server },
    {
      documentSelector: [
        { scheme: 'file', language: 'arch' },
        { scheme: 'untitled', language: 'arch' },
        { scheme: 'file', pattern: yamlPattern },
      ],
    },
  );
  client.start().catch((error) => {
    vscode.window.showErrorMessage(
      `archc: could not start \`${command} lsp\` (${error.message}). Build it with ` +
        '`cargo build --release --bin archc` or set `archc.server.path`.',
    );
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
