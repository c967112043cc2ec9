using System.CommandLine;
using SharpTune.Chat;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune chat` (interactive, streamed) and `sharptune generate` (one prompt, one answer).</summary>
public static class ChatCommands
{
    private sealed class SessionOptions
    {
        public Option<string> Model { get; } = new("--model") { Description = "Model folder (config.json, *.safetensors, tokenizer.json)", Required = true };
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
            var quantization = Quantization.Read(r);
            var session = ChatSession.Open(r.GetValue(Model)!, r.GetValue(Template), r.GetValue(System), r.GetValue(Adapter) ?? [], quantization);
            CliAction.ReportBackend(session.Model.Backend);
            if (quantization is not null) Console.Error.WriteLine($"[sharptune] projections quantized on load: {quantization}");
            foreach (var adapter in session.Model.Adapters)
                Console.Error.WriteLine($"[sharptune] adapter: {adapter.Directory} (r = {adapter.Config.Rank}, scaling {adapter.Config.Scaling:0.####}, {adapter.Pairs.Count} LoRA modules, {adapter.ReplacedTensors.Count} replaced tensors)");
            return session;
        }
    }

    public static Command Chat()
    {
        var o = new SessionOptions();
        var command = new Command("chat", "Chat with a model in the terminal, streamed. /clear starts over, /exit quits.");
        o.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            using var session = o.Open(r);
            var options = o.Generation.Apply(r, session.DefaultOptions());
            Console.Error.WriteLine($"[sharptune] template: {session.Template.Name}. Type a message; /clear resets the conversation, /exit quits.");
            while (true)
            {
                Console.Write("User: ");
                string? line = Console.ReadLine();
                if (line is null || line.Trim() == "/exit") break;
                if (line.Trim() == "/clear")
                {
                    session.Clear();
                    Console.WriteLine("(history cleared)");
                    continue;
                }
                if (line.Trim().Length == 0) continue;
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
