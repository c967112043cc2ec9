namespace SharpTune.Model;

/// <summary>A model folder or its config is unusable; the message names the file and what is wrong.</summary>
public sealed class ModelFolderException(string message) : Exception(message);
