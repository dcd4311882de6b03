// Light or dark: the user's choice (light / dark / system) kept in localStorage; "system" follows
// prefers-color-scheme, live. The resolved theme is <html data-theme="light|dark">; style.css maps it
// to the colour variables every view uses.
import { useEffect, useState } from "preact/hooks";

export const THEME_CHOICES = ["system", "light", "dark"];
const KEY = "orva-theme";
const media = window.matchMedia("(prefers-color-scheme: dark)");
const listeners = new Set();

export function themeChoice() {
  try {
    const saved = window.localStorage.getItem(KEY);
    return THEME_CHOICES.includes(saved) ? saved : "system";
  } catch {
    return "system"; // storage refused (privacy mode): the system's preference
  }
}

function resolve(choice) {
  if (choice === "light" || choice === "dark") return choice;
  return media.matches ? "dark" : "light";
}

function apply() {
  const choice = themeChoice();
  const theme = resolve(choice);
  document.documentElement.dataset.theme = theme;
  for (const fn of [...listeners]) fn({ choice, theme });
}

export function setThemeChoice(choice) {
  try {
    window.localStorage.setItem(KEY, choice);
  } catch {
    // not saved, still applied below for this page
  }
  const theme = resolve(choice);
  document.documentElement.dataset.theme = theme;
  for (const fn of [...listeners]) fn({ choice, theme });
}

// {choice, theme}, re-rendering on a change here, in the system's preference or in another tab.
export function useTheme() {
  const [state, setState] = useState(() => ({ choice: themeChoice(), theme: resolve(themeChoice()) }));
  useEffect(() => {
    listeners.add(setState);
    return () => listeners.delete(setState);
  }, []);
  return state;
}

media.addEventListener("change", apply);
window.addEventListener("storage", (e) => e.key === KEY && apply());
apply(); // at import, before the first render: no flash of the other theme
