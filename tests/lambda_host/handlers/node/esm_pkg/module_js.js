// A .js file in a "type": "module" package: an ES module.
export const handler = async () => ({ esm: 'type-module' });
