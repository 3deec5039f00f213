throw new Error('load failure');
