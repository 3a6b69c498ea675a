// A .ps1 file imported by the PowerShell module generator is its text (the bundler's and vitest's
// text loader for .ps1).
declare module '*.ps1' {
  const text: string;
  export default text;
}
