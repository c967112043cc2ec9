using System.CommandLine;
using SharpTune.Chat;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Quantization;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune chat` (interactive, streamed) and `sharptune generate` (one prompt, one answer).</summary>
public static class ChatCommands
{
    private sealed class SessionOptions
    {
        public Option<string?> Model { get; } = new("--model") { Description = "Model folder (config.json, *.safetensors, tokenizer.json)" };
        public Option<string[]> Adapter { get; } = new("--adapter") { Description = "LoRA adapter folder (adapter_config.json, adapter_model.safetensors) applied unmerged; repeat to stack adapters in order" };
        public Option<string> Template { get; } = new("--template") { Description = "Chat template name, or 'auto' to read it from tokenizer_config.json", DefaultValueFactory = _ => "auto" };
        public Option<string?> System { get; } = new("--system") { Description = "System prompt (default: the template's)" };
        public QuantizationArguments Quantization { get; } = new();
        public GenerationArguments Generation { get; } = new();

        public void AddTo(Command c)
        {
            c.Options.Add(Model);
            c.Options.Add(Adapter);
            Quantization.AddTo(c);
            c.Options.Add(Template);
            c.Options.Add(System);
            Generation.AddTo(c);
        }

        public ChatSession Open(ParseResult r)
        {
            string model = r.GetValue(Model) ?? throw new ArgumentException("give a model folder (--model DIR)");
            var quantization = Quantization.Read(r);
            return Report(ChatSession.Open(model, r.GetValue(Template), r.GetValue(System), r.GetValue(Adapter) ?? [], quantization), quantization);
        }

        /// <summary>As <c>llamafactory-cli chat CONFIG</c>: the config's model, adapters, template, default_system, quantization and generation keys.</summary>
        public (ChatSession Session, GenerationOptions Options) OpenConfig(ParseResult r, string configPath, IReadOnlyList<string> overrides)
        {
            if (r.GetValue(Model) is not null || r.GetValue(Adapter) is { Length: > 0 })
                throw new ArgumentException("give either a config file or --model/--adapter, not both");
            var cfg = SftConfig.Load(configPath, overrides, ConfigUse.Chat);
            foreach (string note in cfg.Notes) Console.Error.WriteLine($"[sharptune] note: {note}");
            var session = Report(ChatSession.Open(cfg.Model.ModelNameOrPath, cfg.Data.Template ?? "auto", cfg.Data.DefaultSystem,
                cfg.Model.AdapterNameOrPath, cfg.Model.Quantization), cfg.Model.Quantization);
            return (session, session.DefaultOptions().With(cfg.Generating));
        }

        private static ChatSession Report(ChatSession session, QuantizationOptions? quantization)
        {
            CliAction.ReportBackend(session.Model.Backend);
            if (quantization is not null) Console.Error.WriteLine($"[sharptune] projections quantized on load: {quantization}");
            foreach (var adapter in session.Model.Adapters)
                Console.Error.WriteLine($"[sharptune] adapter: {adapter.Directory} ({adapter.Describe()})");
            return session;
        }
    }

    public static Command Chat()
    {
        var o = new SessionOptions();
        var config = new Argument<string?>("config") { Description = "LLaMA-Factory style YAML config (model_name_or_path, adapter_name_or_path, template, default_system, generation keys); instead of --model", Arity = ArgumentArity.ZeroOrOne };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the config file's values", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("chat", "Chat with a model in the terminal, streamed. clear (or /clear) starts over, exit (or /exit) quits.") { config, overrides };
        o.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            ChatSession session;
            GenerationOptions options;
            if (r.GetValue(config) is string configPath)
            {
                (session, options) = o.OpenConfig(r, configPath, r.GetValue(overrides) ?? []);
            }
            else
            {
                if (r.GetValue(overrides) is { Length: > 0 }) throw new ArgumentException("key=value overrides need a config file");
                session = o.Open(r);
                options = o.Generation.Apply(r, session.DefaultOptions());
            }
            using var owned = session;
            Console.Error.WriteLine($"[sharptune] template: {session.Template.Name}. Type a message; clear resets the conversation, exit quits.");
            while (true)
            {
                Console.Write("User: ");
                string? line = Console.ReadLine();
                // LLaMA-Factory's chat takes exit and clear typed alone as commands; the slash forms work too.
                if (line is null) break;
                string typed = line.Trim();
                if (typed is "exit" or "/exit") break;
                if (typed is "clear" or "/clear")
                {
                    session.Clear();
                    Console.WriteLine("(history cleared)");
                    continue;
                }
                if (typed.Length == 0) continue;
                Console.Write("Assistant: ");
                session.Reply(line, options, piece => Console.Write(piece));
                Console.WriteLine();
            }
            return 0;
        }));
        return command;
    }

    public static Command Generate()
    {
        var o = new SessionOptions();
        var prompt = new Option<string>("--prompt") { Description = "The user message", Required = true };
        var command = new Command("generate", "Answer one prompt, formatted with the chat template, and print the reply.");
        o.AddTo(command);
        command.Options.Add(prompt);
        command.SetAction(r => CliAction.Run(() =>
        {
            using var session = o.Open(r);
            var options = o.Generation.Apply(r, session.DefaultOptions());
            session.Reply(r.GetValue(prompt)!, options, piece => Console.Write(piece));
            Console.WriteLine();
            return 0;
        }));
        return command;
    }
}
