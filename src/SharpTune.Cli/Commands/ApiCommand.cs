using System.CommandLine;
using System.Globalization;
using SharpTune.Api;
using SharpTune.Hparams;
using SharpTune.Inference;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune api`: serves a model (and each named adapter as its own model id) over an OpenAI-compatible HTTP API,
/// from options or, as LLaMA-Factory's `llamafactory-cli api`, from a YAML config. As there, API_HOST, API_PORT,
/// API_KEY and API_MODEL_NAME are read from the environment; a command-line option wins over its variable.
/// </summary>
public static class ApiCommand
{
    public static Command Create()
    {
        var config = new Argument<string?>("config") { Description = "LLaMA-Factory style YAML config (model_name_or_path, adapter_name_or_path, template, default_system, generation keys); instead of --model", Arity = ArgumentArity.ZeroOrOne };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the config file's values", Arity = ArgumentArity.ZeroOrMore };
        var model = new Option<string?>("--model") { Description = "Model folder (config.json, *.safetensors, tokenizer.json)" };
        var adapter = new Option<string[]>("--adapter") { Description = "NAME=DIR: also serve the model with this LoRA adapter, as model id NAME (a bare DIR is named after its folder); repeat for more" };
        var template = new Option<string>("--template") { Description = "Chat template name, or 'auto' to read it from tokenizer_config.json", DefaultValueFactory = _ => "auto" };
        var system = new Option<string?>("--system") { Description = "Default system prompt, used when a conversation has none (default: the template's)" };
        var modelName = new Option<string?>("--model-name") { Description = "The base model's id in /v1/models (default: $API_MODEL_NAME, else the model folder's name)" };
        var host = new Option<string?>("--host") { Description = "IP address to listen on, or a name whose every address is bound (default: $API_HOST, else 127.0.0.1)" };
        var port = new Option<int?>("--port") { Description = "Port to listen on (default: $API_PORT, else 8000)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1 requests (default: $API_KEY, else no key)" };
        var contextLength = new Option<int?>("--context-length") { Description = "Most tokens a prompt and its completion may take together (default: the model's max_position_embeddings)" };
        var allowedHost = new Option<string[]>("--allowed-host") { Description = "NAME: also answer requests whose Host header is NAME (on loopback only the bound addresses and localhost are answered); repeat for more" };
        var corsOrigin = new Option<string[]>("--cors-origin") { Description = "ORIGIN (https://app.example, or *): let web pages from it call the server; repeat for more (default: none)" };
        var maxTokensLimit = new Option<int?>("--max-tokens-limit") { Description = "Most tokens one completion may ask for with max_tokens (default: the context length)" };
        var requestTimeout = new Option<double>("--request-timeout") { Description = "Seconds one generation may run before it ends with finish_reason \"length\"", DefaultValueFactory = _ => 600 };
        var quantization = new QuantizationArguments();
        var generation = new GenerationArguments();

        var command = new Command("api", "Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models) until Ctrl+C")
        {
            config, overrides, model, adapter, template, system, modelName, host, port, apiKey, contextLength,
            allowedHost, corsOrigin, maxTokensLimit, requestTimeout,
        };
        quantization.AddTo(command);
        generation.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            string? baseName = r.GetValue(modelName) ?? Environment.GetEnvironmentVariable("API_MODEL_NAME");
            int? context = r.GetValue(contextLength);
            var models = new List<ServedModel>();
            double timeoutSeconds = r.GetValue(requestTimeout);
            // Checked here as well: TimeSpan.FromSeconds itself fails on NaN and on values beyond TimeSpan's range.
            if (!(timeoutSeconds > 0 && timeoutSeconds <= ApiServerOptions.MaxRequestTimeout.TotalSeconds))
                throw new ArgumentException($"--request-timeout must be more than 0 and at most {ApiServerOptions.MaxRequestTimeout.TotalSeconds:0} seconds, got {timeoutSeconds}");
            var options = new ApiServerOptions
            {
                Host = r.GetValue(host) ?? Environment.GetEnvironmentVariable("API_HOST") ?? "127.0.0.1",
                Port = r.GetValue(port) ?? EnvironmentPort() ?? 8000,
                ApiKey = r.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("API_KEY"),
                AllowedHosts = r.GetValue(allowedHost) ?? [],
                CorsOrigins = r.GetValue(corsOrigin) ?? [],
                MaxTokensLimit = r.GetValue(maxTokensLimit),
                RequestTimeout = TimeSpan.FromSeconds(timeoutSeconds),
            };
            // Before the models load, which may take minutes: a wrong option or host should not wait for that.
            options.Validate();
            ServerBinding.ResolveHost(options.Host);
            try
            {
                if (r.GetValue(config) is string configPath)
                {
                    if (r.GetValue(model) is not null || r.GetValue(adapter) is { Length: > 0 })
                        throw new ArgumentException("give either a config file or --model/--adapter, not both");
                    var cfg = SftConfig.Load(configPath, r.GetValue(overrides) ?? [], ConfigUse.Api);
                    foreach (string note in cfg.Notes) Console.Error.WriteLine($"[sharptune] note: {note}");
                    models.Add(ServedModel.FromConfig(cfg, baseName, context));
                }
                else
                {
                    if (r.GetValue(overrides) is { Length: > 0 }) throw new ArgumentException("key=value overrides need a config file");
                    string modelDir = r.GetValue(model) ?? throw new ArgumentException("give a model folder (--model DIR) or a config file");
                    var q = quantization.Read(r);
                    Func<GenerationOptions, GenerationOptions> defaults = o => generation.Apply(r, o);
                    string baseId = baseName ?? FolderName(modelDir);
                    models.Add(ServedModel.Load(baseId, modelDir, [], r.GetValue(template), q, context, r.GetValue(system), defaults: defaults));
                    foreach (string spec in r.GetValue(adapter) ?? [])
                    {
                        var (name, dir) = AdapterSpec(spec);
                        models.Add(ServedModel.Load(name, modelDir, [dir], r.GetValue(template), q, context, r.GetValue(system), defaults: defaults));
                    }
                }
                Serve(options, models);
                return 0;
            }
            finally
            {
                foreach (var served in models) served.Dispose();
            }
        }));
        return command;
    }

    /// <summary>Starts the server on the loaded models, reports where it listens, and serves until Ctrl+C (also `swift deploy`).</summary>
    internal static void Serve(ApiServerOptions options, IReadOnlyList<ServedModel> models)
    {
        var server = ApiServer.StartAsync(options, models).GetAwaiter().GetResult();
        try
        {
            string bound = string.Join(", ", server.Addresses.Select(a => $"{a}v1"));
            if (!server.IsLoopbackOnly)
                Console.Error.WriteLine(string.IsNullOrEmpty(options.ApiKey)
                    ? $"[sharptune] warning: listening on {options.Host}, not loopback, without an API key: anyone who can reach {bound} can use the model (set --api-key or API_KEY)"
                    : $"[sharptune] note: listening on {options.Host}, not loopback: anyone who can reach {bound} and has the key can use the model; plain HTTP carries the key and the conversations unencrypted (put a TLS proxy in front across networks)");
            foreach (var served in models)
                Console.Error.WriteLine($"[sharptune] model id '{served.Id}': template {served.Template.Name}, context length {served.ContextLength}, "
                    + $"at most {Math.Min(options.MaxTokensLimit ?? int.MaxValue, served.ContextLength)} tokens per completion");
            Console.Error.WriteLine($"[sharptune] serving the OpenAI API at {bound}{(string.IsNullOrEmpty(options.ApiKey) ? "" : " (API key required)")}; "
                + $"{options.RequestTimeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s per generation at most; Ctrl+C stops");
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
            Console.Error.WriteLine("[sharptune] stopped");
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static (string Name, string Dir) AdapterSpec(string spec)
    {
        int eq = spec.IndexOf('=');
        if (eq < 0) return (FolderName(spec), spec);
        if (eq == 0 || eq == spec.Length - 1) throw new ArgumentException($"--adapter '{spec}': expected NAME=DIR");
        return (spec[..eq], spec[(eq + 1)..]);
    }

    private static string FolderName(string dir) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));

    private static int? EnvironmentPort()
    {
        string? text = Environment.GetEnvironmentVariable("API_PORT");
        if (string.IsNullOrEmpty(text)) return null;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int port)
            ? port
            : throw new ArgumentException($"API_PORT must be a port number, got '{text}'");
    }
}
