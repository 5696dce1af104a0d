// A smoke test of extension.js outside VS Code: a stand-in `vscode` module, the real vscode-languageclient
// (`npm install` first). activate() must build a client that runs `<archc> lsp` for .arch and YAML files.
//
//   cd editors/vscode && npm install --omit=dev && ARCHC=/path/to/archc node test/smoke.js
'use strict';

const assert = require('assert');
const Module = require('module');
const path = require('path');

// Any member of the stand-in is a constructible, callable stand-in: the client's features subclass and call
// vscode's types when they are built.
const standIn = () => new Proxy(function () {}, handler);
const handler = {
  get: (_, prop) => (prop === Symbol.toPrimitive ? undefined : standIn()),
  construct: () => standIn(),
  apply: () => standIn(),
};
const settings = { 'server.path': process.env.ARCHC || '', 'yaml.pattern': '**/architectures/**/*.{yaml,yml}' };
const workspace = new Proxy(
  {
    getConfiguration: () => ({ get: (key) => settings[key] }),
    workspaceFolders: [],
    textDocuments: [],
    notebookDocuments: [],
  },
  { get: (target, prop) => (prop in target ? target[prop] : () => ({ dispose() {} })) },
);
const errors = [];
const vscode = new Proxy(
  { version: '1.90.0', workspace, window: new Proxy({ showErrorMessage: (m) => errors.push(m) }, { get: (t, p) => t[p] || standIn() }) },
  { get: (target, prop) => target[prop] || standIn() },
);
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === 'vscode' ? vscode : load.call(this, request, ...rest);
};

const { LanguageClient } = require('vscode-languageclient/node');
const started = [];
LanguageClient.prototype.start = function () {
  started.push(this);
  return Promise.resolve();
};
require(path.join(__dirname, '..', 'extension.js')).activate({ subscriptions: [] });

assert.strictEqual(started.length, 1, 'one client started');
const client = started[0];
assert.deepStrictEqual(client._serverOptions.run.args, ['lsp']);
assert.strictEqual(client._serverOptions.run.command, settings['server.path'] || 'archc');
const selector = client._clientOptions.documentSelector;
assert.ok(selector.some((s) => s.language === 'arch'));
assert.ok(selector.some((s) => s.pattern === settings['yaml.pattern']));
assert.deepStrictEqual(errors, []);
console.log(`ok: activate() starts \`${client._serverOptions.run.command} lsp\` for ${selector.length} document selectors`);
