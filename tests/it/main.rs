mod exclude;
