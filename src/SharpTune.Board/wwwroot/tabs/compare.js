'use strict';
Board.registerTab('compare', {});
