namespace SharpTune.Model;

/// <summary>
/// The files of a Hugging Face model folder: config.json, weights (*.safetensors, possibly sharded through
/// model.safetensors.index.json), and optionally generation_config.json, tokenizer.json, tokenizer_config.json.
/// </summary>
public static class ModelFolder
{
    public static string ConfigPath(string dir) => Path.Combine(dir, "config.json");
    public static string GenerationConfigPath(string dir) => Path.Combine(dir, "generation_config.json");
    public static string TokenizerPath(string dir) => Path.Combine(dir, "tokenizer.json");

    /// <summary>Checks that dir is a loadable model folder and says exactly what is missing when it is not.</summary>
    public static void Validate(string dir)
    {
        if (!Directory.Exists(dir))
            throw new ModelFolderException(Hub.HubCache.IsRepoId(dir)
                ? $"model folder '{dir}' does not exist, and no model '{dir}' is in the Hugging Face cache ({Hub.HubCache.Root()}); run `sharptune download {dir}` or name it where a Hub id is downloaded on first use"
                : $"model folder '{dir}' does not exist");
        if (!File.Exists(ConfigPath(dir))) throw new ModelFolderException($"model folder '{dir}' has no config.json");
        bool hasIndex = File.Exists(Path.Combine(dir, "model.safetensors.index.json"));
        if (!hasIndex && Directory.GetFiles(dir, "*.safetensors").Length == 0)
        {
            string hint = Directory.GetFiles(dir, "*.bin").Length > 0
                ? " (found PyTorch *.bin weights: convert them to safetensors first)"
                : "";
            throw new ModelFolderException($"model folder '{dir}' has no weights: no *.safetensors file and no model.safetensors.index.json{hint}");
        }
    }

    /// <summary>
    /// Checks that dir has the tokenizer files chat and generation need: tokenizer.json, or the tokenizer.model of
    /// ChatGLM3 (SentencePiece) and GLM-4 (tiktoken ranks).
    /// </summary>
    public static void ValidateTokenizer(string dir)
    {
        if (!File.Exists(TokenizerPath(dir)) && !File.Exists(Path.Combine(dir, "tokenizer.model")))
            throw new ModelFolderException($"folder '{dir}' has no tokenizer.json or tokenizer.model (copy the base model's tokenizer files and tokenizer_config.json into it)");
    }
}
