'use strict';
Board.registerTab('evaluate', {});
