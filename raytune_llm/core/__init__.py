"""The bottom layer, torch- and Ray-free: errors a user can fix (`errors`), the base of every config model
(`strict`), the plug-in registry (`registry`, with the `protocols` the plug-ins below the schema are typed by), what
became of a trial (`outcomes`), every stop reason (`stops`), run folders on cloud URIs (`storage`), and what a
process keeps between trials (`process_cache`)."""
