namespace Lepton.Cli.LocalStack;

/// <summary>The checkout the local stack runs from (it holds the pinned Azurite in node_modules).</summary>
public static class Checkout
{
    public const string MarkerFile = "Lepton.Functions.sln";

    private static string? _root;

    /// <summary>
    /// The repository root: the nearest folder holding the solution, above the binaries or the
    /// current folder. Looked up on first use, so a command that needs no checkout never fails for
    /// the lack of one, and one that does gets the <see cref="Shared.ConfigurationException"/>
    /// (not a type-initializer error).
    /// </summary>
    public static string Root => _root ??= Find(AppContext.BaseDirectory, Directory.GetCurrentDirectory())
        ?? throw new Shared.ConfigurationException(
            $"cannot find the Lepton checkout ({MarkerFile}) above the current folder: run from the repository");

    /// <summary>The nearest folder at or above one of <paramref name="starts"/> (tried in order) that holds the solution.</summary>
    public static string? Find(params string[] starts)
    {
        foreach (var start in starts)
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, MarkerFile)))
                {
                    return dir.FullName;
                }
            }
        }
        return null;
    }
}
