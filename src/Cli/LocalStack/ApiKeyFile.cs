using System.Security.Cryptography;

namespace Lepton.Cli.LocalStack;

/// <summary>
/// The local stack's API key: generated once into <c>{data}/api-key</c> with mode 0600 (only the
/// user can read it) and kept across restarts, so scripts and the CLI keep working. The stack
/// enforces it on <c>/api</c> and on the workers; the CLI reads it when the API is local.
/// </summary>
public static class ApiKeyFile
{
    public const string FileName = "api-key";

    /// <summary>The key in <paramref name="dataDir"/>, created (0600) when there is none yet.</summary>
    public static string LoadOrCreate(string dataDir)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new Shared.ConfigurationException("the local stack runs on Linux (it relies on file modes and parent-death signals)");
        }
        var path = Path.Combine(dataDir, FileName);
        Directory.CreateDirectory(dataDir);
        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path).Trim();
            if (existing.Length >= 32)
            {
                // Tighten the mode if someone loosened it; the key itself stays.
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                return existing;
            }
        }
        var key = "lk_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var temporary = path + ".tmp";
        File.Delete(temporary);
        using (var stream = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(key + "\n");
        }
        File.Move(temporary, path, overwrite: true);
        return key;
    }
}
