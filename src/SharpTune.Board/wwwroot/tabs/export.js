'use strict';
Board.registerTab('export', {});
