using System.CommandLine;
using System.CommandLine.Help;
using Lepton.Cli.Commands;
using Spectre.Console;

var root = new RootCommand(
    "lepton: run many versions of an ONNX model side by side, and move each new one through "
    + "validate → evaluate → canary → promote (or roll back).");
root.Subcommands.Add(DevCommand.Create());
root.Subcommands.Add(PushCommand.Create());
root.Subcommands.Add(InspectCommands.Status());
root.Subcommands.Add(InspectCommands.Watch());
foreach (var command in OperatorCommands.Create())
{
    root.Subcommands.Add(command);
}
root.Subcommands.Add(InspectCommands.Routes());
root.Subcommands.Add(InspectCommands.History());
root.Subcommands.Add(OperatorCommands.Infer());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
// Help wraps at the width the tables use (the terminal's, or COLUMNS when the output is piped),
// not at none at all when piped.
foreach (var help in root.Options.OfType<HelpOption>())
{
    if (help.Action is HelpAction action)
    {
        action.MaxWidth = AnsiConsole.Profile.Width;
    }
}
// Ctrl-C and SIGTERM cancel the command's token; System.CommandLine then waits this long for the
// command to finish before it ends the process (its default, 2 s, cut `lepton dev` off halfway
// through stopping its children, leaving pid files and Azurite to the parent-death signal).
var invocation = new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(60) };
return await root.Parse(args).InvokeAsync(invocation);
