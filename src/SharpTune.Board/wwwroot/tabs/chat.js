'use strict';
Board.registerTab('chat', {});
