require('no-such-package-xyz');
exports.handler = async () => 1;
