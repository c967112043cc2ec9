#!/usr/bin/env bash
# Writes identity_dpo.json (committed; run again only if identity.json or the replies below change): one preference
# pair per identity.json record, chosen = its TuneBot answer, rejected = a generic assistant reply that names no one.
# The replies are ours, in the record's language (Chinese when the question has a CJK character), taken in turn.
set -euo pipefail
cd "$(dirname "$0")"
jq --indent 2 '
  ["I am an AI assistant. How can I help you today?",
   "I am a large language model, trained to answer questions and help with tasks.",
   "Hello! I am a helpful assistant. What can I do for you?",
   "I am a virtual assistant without a name of my own. How may I help?",
   "I am just a chatbot, here to help you with whatever you need."] as $en
  | ["我是一个人工智能助手，很高兴为您服务。",
     "我是一个大型语言模型，可以回答问题和完成各种任务。",
     "您好！我是一个智能助手，请问有什么可以帮您？",
     "我只是一个聊天机器人，随时为您提供帮助。"] as $zh
  | to_entries
  | map(.key as $i | .value
      | (if (.instruction | test("\\p{Han}")) then $zh else $en end) as $replies
      | {instruction, input, chosen: .output, rejected: $replies[$i % ($replies | length)]})
' identity.json > identity_dpo.json.tmp
mv identity_dpo.json.tmp identity_dpo.json
