'use strict';
Board.registerTab('train', {});
